/* ctl_scan.h - is there a control character (C0 or DEL) in untrusted
 * bytes? Asked of every header value the collector reads, every URL and
 * every text member of an event, so it goes a 64-bit word at a time and
 * looks at single bytes only in a word that may hold one.
 *
 * Only answers yes or no; never copies or keeps the bytes. */
#ifndef VEIL_CTL_SCAN_H
#define VEIL_CTL_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline bool ctl_byte(unsigned char c, bool allow_tab)
{
    return (c < 0x20 && !(allow_tab && c == '\t')) || c == 0x7f;
}

/* True when the word holds a byte below 0x20 or a DEL. Both tests are the
 * exact "has a byte less than n" and "has a zero byte" word tricks. */
static inline bool ctl_word(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    uint64_t del = w ^ (ones * 0x7f);
    return ((((w - ones * 0x20) & ~w) | ((del - ones) & ~del)) & high) != 0;
}

static inline bool ctl_scan_bytes(const char *s, size_t len, bool allow_tab)
{
    for (size_t i = 0; i < len; i++)
        if (ctl_byte((unsigned char)s[i], allow_tab))
            return true;
    return false;
}

/* True when s[0..len) holds a control character; with `allow_tab`, HTAB
 * does not count (header values may hold one). */
static inline bool ctl_scan(const char *s, size_t len, bool allow_tab)
{
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (ctl_word(w) && ctl_scan_bytes(s + i, 8, allow_tab))
            return true;
    }
    return ctl_scan_bytes(s + i, len - i, allow_tab);
}

#endif
