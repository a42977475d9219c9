/* test_auth.c - bearer tokens kept as SHA-256 hashes: the plain api_token
 * is wiped, grants are per site or for all sites, bad entries are refused. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

/* printf %s secret | sha256sum */
#define SECRET_SHA256 "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
/* printf %s site-token | sha256sum */
#define SITE_TOKEN_SHA256 "c8411df959a2a269e5e59740b597ac0d27c295110ac3acd8e856e7bcb352a724"

Test(auth, hash_hex_matches_sha256sum)
{
    char hex[65];
    cr_assert_eq(auth_hash_token_hex("secret", hex), 0);
    cr_expect_str_eq(hex, SECRET_SHA256);
    cr_expect_eq(auth_hash_token_hex("", hex), -1);
    char *long_token = malloc(AUTH_TOKEN_MAX + 2);
    memset(long_token, 'x', AUTH_TOKEN_MAX + 1);
    long_token[AUTH_TOKEN_MAX + 1] = '\0';
    cr_expect_eq(auth_hash_token_hex(long_token, hex), -1);
    free(long_token);
}

static struct auth *make(char *api_token)
{
    char site_grant[100], star_grant[100];
    char hex[65];
    cr_assert_eq(auth_hash_token_hex("site-token", hex), 0);
    snprintf(site_grant, sizeof site_grant, "a.example=%s", hex);
    cr_assert_eq(auth_hash_token_hex("second-site", hex), 0);
    snprintf(star_grant, sizeof star_grant, "b.example=%s", hex);
    char *items[] = {site_grant, star_grant};
    struct cfg_list list = {2, items};
    char err[200];
    struct auth *a = auth_new(api_token, &list, err, sizeof err);
    cr_assert_not_null(a, "%s", err);
    return a;
}

Test(auth, plain_api_token_is_wiped_after_hashing)
{
    char token[] = "secret";
    struct auth *a = make(token);
    for (size_t i = 0; i < sizeof token; i++)
        cr_expect_eq(token[i], '\0', "byte %zu survived", i);
    unsigned char h[AUTH_HASH_BYTES];
    cr_expect_eq(auth_identify(a, "Bearer secret", h), AUTH_OK);
    cr_expect(auth_all_sites(a, h));
    cr_expect_eq(auth_check_site(a, h, "anything.example"), AUTH_OK);
    auth_free(a);
}

Test(auth, header_forms)
{
    char token[] = "secret";
    struct auth *a = make(token);
    unsigned char h[AUTH_HASH_BYTES];
    cr_expect_eq(auth_identify(a, NULL, h), AUTH_MISSING);
    cr_expect_eq(auth_identify(a, "", h), AUTH_MISSING);
    cr_expect_eq(auth_identify(a, "Bearer", h), AUTH_MISSING);
    cr_expect_eq(auth_identify(a, "Bearer    ", h), AUTH_MISSING);
    cr_expect_eq(auth_identify(a, "Basic c2VjcmV0", h), AUTH_MISSING);
    cr_expect_eq(auth_identify(a, "Bearer secret2", h), AUTH_INVALID);
    cr_expect_eq(auth_identify(a, "Bearer Secret", h), AUTH_INVALID);
    cr_expect_eq(auth_identify(a, "bearer secret", h), AUTH_OK);
    cr_expect_eq(auth_identify(a, "Bearer   secret  ", h), AUTH_OK);
    auth_free(a);
}

Test(auth, per_site_grants)
{
    struct auth *a = make(NULL);
    unsigned char h[AUTH_HASH_BYTES];
    cr_assert_eq(auth_grant_count(a), 2);
    cr_assert_eq(auth_identify(a, "Bearer site-token", h), AUTH_OK);
    cr_expect_eq(auth_check_site(a, h, "a.example"), AUTH_OK);
    cr_expect_eq(auth_check_site(a, h, "b.example"), AUTH_FORBIDDEN);
    cr_expect_eq(auth_check_site(a, h, "a.example.evil"), AUTH_FORBIDDEN);
    cr_expect_eq(auth_check_site(a, h, NULL), AUTH_FORBIDDEN);
    cr_expect_not(auth_all_sites(a, h));
    const char *sites[4];
    cr_assert_eq(auth_named_sites(a, h, sites, 4), 1);
    cr_expect_str_eq(sites[0], "a.example");
    /* No api_token: the all-sites secret is unknown. */
    cr_expect_eq(auth_identify(a, "Bearer secret", h), AUTH_INVALID);
    auth_free(a);
}

Test(auth, star_grant_and_uppercase_hex)
{
    char item[100] = "*=";
    for (size_t i = 0; SECRET_SHA256[i]; i++)
        item[2 + i] = (char)(SECRET_SHA256[i] >= 'a' ? SECRET_SHA256[i] - 32 : SECRET_SHA256[i]);
    char *items[] = {item};
    struct cfg_list list = {1, items};
    char err[200];
    struct auth *a = auth_new(NULL, &list, err, sizeof err);
    cr_assert_not_null(a, "%s", err);
    unsigned char h[AUTH_HASH_BYTES];
    cr_assert_eq(auth_identify(a, "Bearer secret", h), AUTH_OK);
    cr_expect(auth_all_sites(a, h));
    auth_free(a);
}

Test(auth, malformed_entries_are_refused)
{
    const char *bad[] = {"a.example", "=" SECRET_SHA256, "a.example=" SITE_TOKEN_SHA256 "0",
                         "a.example=xyz", "a.example=" "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25g"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char copy[200];
        snprintf(copy, sizeof copy, "%s", bad[i]);
        char *items[] = {copy};
        struct cfg_list list = {1, items};
        char err[200] = "";
        cr_expect_null(auth_new(NULL, &list, err, sizeof err), "%s", bad[i]);
        cr_expect(strncmp(err, "api_tokens:", 11) == 0, "%s -> %s", bad[i], err);
    }
}

Test(auth, no_grants_refuse_everything)
{
    char err[200];
    struct cfg_list empty = {0, NULL};
    char token[] = "";
    struct auth *a = auth_new(token, &empty, err, sizeof err);
    cr_assert_not_null(a);
    unsigned char h[AUTH_HASH_BYTES];
    cr_expect_eq(auth_grant_count(a), 0);
    cr_expect_eq(auth_identify(a, "Bearer anything", h), AUTH_INVALID);
    auth_free(a);
}
