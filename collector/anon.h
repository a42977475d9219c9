/* anon.h - the client IP, in memory only (privacy invariant P1).
 *
 * This module finds the client address of a request (the socket peer, or a
 * hop of X-Forwarded-For / Forwarded when the peer is a trusted proxy),
 * truncates it, formats it and wipes it. It is the only place that knows
 * how an address is spelled.
 *
 * It never logs, stores or returns the IP in any other form than a
 * `struct client_ip` owned by the caller (or the formatted text the caller
 * explicitly asks for, meant for the truncated form only). Every stack
 * copy it makes is wiped with sodium_memzero before returning. Callers wipe
 * their own `struct client_ip` with anon_ip_wipe() once the geo lookup and
 * the visitor hash are done.
 *
 * IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are converted to AF_INET by
 * every function that produces a `struct client_ip`. */
#ifndef VEIL_ANON_H
#define VEIL_ANON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"

/* Room for any formatted address plus NUL (INET6_ADDRSTRLEN). */
#define ANON_IP_STRLEN 46

struct client_ip {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* network byte order; 4 bytes used for v4, rest zero */
};

/* Trusted proxy networks (opaque). */
struct anon_cidr_list;

/* Copy the address of an AF_INET or AF_INET6 socket address into *out
 * (mapped v4 becomes AF_INET; the port is dropped). Returns false, with
 * *out zeroed, for any other family or a NULL `sa`. */
bool anon_ip_from_sockaddr(const struct sockaddr *sa, struct client_ip *out);

/* Parse the `len` bytes at `s` (no NUL needed) as one address in any of the
 * forms seen in proxy headers: "a.b.c.d", "a.b.c.d:port", bare IPv6,
 * "[v6]", "[v6]:port". A port is 1-5 digits (<= 65535) or an RFC 7239
 * obfuscated port ("_" followed by ALPHA / DIGIT / "." / "_" / "-"), and
 * is ignored. No surrounding whitespace, zone ids, quotes or leading-zero
 * octets. Returns true and fills *out, or false (with *out zeroed). */
bool anon_ip_parse(const char *s, size_t len, struct client_ip *out);

/* Turn an AF_INET6 ::ffff:a.b.c.d into AF_INET in place and zero the unused
 * tail of a v4 address. Anything else is left as it is. */
void anon_ip_normalise(struct client_ip *ip);

/* Build a trusted-proxy list from config items: "10.0.0.0/8", "::1",
 * "127.0.0.1", "fd00::/8". A bare address means a single host. Host bits
 * beyond the prefix are ignored ("10.1.2.3/8" == "10.0.0.0/8"). A mapped
 * "::ffff:a.b.c.d/N" with N >= 96 becomes the IPv4 network /N-96.
 * IPv4 and IPv6 networks never match each other ("::/0" matches no IPv4
 * client). `items` may be NULL or empty (an empty list trusts nobody).
 * Returns a list the caller frees with anon_cidr_list_free(), or NULL with
 * "trusted proxy '<item>': reason" in err. */
struct anon_cidr_list *anon_cidr_list_new(const struct cfg_list *items, char *err,
                                          size_t errlen);
void anon_cidr_list_free(struct anon_cidr_list *list);

/* Number of networks in the list (0 for NULL). */
size_t anon_cidr_list_len(const struct anon_cidr_list *list);

/* True when `ip` falls in one of the list's networks. A NULL list contains
 * nothing. */
bool anon_cidr_contains(const struct anon_cidr_list *list, const struct client_ip *ip);

/* The client address of a request whose TCP peer is `peer`.
 *
 * When the peer is not in `trusted` (or the list is empty/NULL) the peer is
 * the client and both headers are ignored: they are trivially forged.
 * When the peer is a trusted proxy, the hops of `x_forwarded_for` (or, if
 * that is NULL/blank, the `for=` parameters of RFC 7239 `forwarded`) are
 * walked from right to left, skipping trusted proxies; the first untrusted
 * hop is the client. Entries to the left of it are never looked at, so an
 * address forged by the client itself is never returned.
 *
 * Where the walk cannot go on, it stops safely at the last hop a trusted
 * proxy vouched for (the last trusted address accepted, or the peer when
 * there was none):
 *   - a malformed entry, "unknown", an obfuscated node or an element
 *     without for= (nothing left of it can be trusted); in Forwarded every
 *     comma separates elements, inside quotes too, so an element with a
 *     stray quote is malformed and never joins a client-written one;
 *   - every entry is trusted (then the leftmost entry is returned; it is a
 *     trusted host, e.g. a health check behind the proxies);
 *   - more than ANON_MAX_HOPS entries (only the rightmost are considered).
 * Always returns true and fills *out (falls back to `peer`); returns false
 * with *out zeroed only when `peer` is NULL. The caller passes the headers
 * as received (multiple header lines joined with ","); they are not
 * modified and no copy of them is kept. */
#define ANON_MAX_HOPS 32
bool anon_client_ip(const struct client_ip *peer, const struct anon_cidr_list *trusted,
                    const char *x_forwarded_for, const char *forwarded,
                    struct client_ip *out);

/* Zero every bit beyond the prefix: `ipv4_prefix` (clamped to 0..32) for
 * AF_INET, `ipv6_prefix` (clamped to 0..128) for AF_INET6. A mapped v6 is
 * treated as v4. `out` may be `ip`. */
void anon_truncate(const struct client_ip *ip, int ipv4_prefix, int ipv6_prefix,
                   struct client_ip *out);

/* Format `ip` with inet_ntop into out (ANON_IP_STRLEN bytes are always
 * enough). Returns false, with out set to "" when outlen > 0, on a bad
 * family or a too-small buffer. Only the truncated form may be formatted
 * for anything that leaves memory (ip_keep=truncated). */
bool anon_ip_format(const struct client_ip *ip, char *out, size_t outlen);

/* Overwrite *ip with zeros (sodium_memzero; not optimised away). */
void anon_ip_wipe(struct client_ip *ip);

#endif
