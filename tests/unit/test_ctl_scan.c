/* test_ctl_scan.c - the word-at-a-time control character scan agrees with
 * the plain byte test for every byte value at every position of a word
 * and of the tail, next to every neighbour (the word tricks borrow across
 * bytes), and on random text. */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "ctl_scan.h"

static bool reference(const unsigned char *s, size_t len, bool allow_tab)
{
    for (size_t i = 0; i < len; i++)
        if ((s[i] < 0x20 && !(allow_tab && s[i] == '\t')) || s[i] == 0x7f)
            return true;
    return false;
}

static void agree(const unsigned char *s, size_t len)
{
    for (int allow_tab = 0; allow_tab < 2; allow_tab++)
        cr_assert_eq(ctl_scan((const char *)s, len, allow_tab), reference(s, len, allow_tab),
                     "len %zu allow_tab %d", len, allow_tab);
}

Test(ctl_scan, every_byte_at_every_position)
{
    unsigned char s[24];
    for (size_t len = 1; len <= sizeof s; len++) {
        for (size_t pos = 0; pos < len; pos++) {
            for (int c = 0; c < 256; c++) {
                memset(s, 'a', len);
                s[pos] = (unsigned char)c;
                agree(s, len);
            }
        }
    }
}

Test(ctl_scan, every_pair_of_neighbours)
{
    unsigned char s[16];
    for (int a = 0; a < 256; a++) {
        for (int b = 0; b < 256; b++) {
            memset(s, 0xff, sizeof s);
            s[3] = (unsigned char)a;
            s[4] = (unsigned char)b;
            agree(s, sizeof s);
            memset(s, ' ', sizeof s);
            s[7] = (unsigned char)a;
            s[8] = (unsigned char)b;
            agree(s, sizeof s);
        }
    }
}

Test(ctl_scan, random_text)
{
    static const unsigned char alphabet[] = {0x00, 0x01, 0x09, 0x0a, 0x1f, 0x20, 0x21, 0x41,
                                             0x7e, 0x7f, 0x80, 0x9f, 0xa0, 0xc3, 0xfe, 0xff};
    unsigned char s[64];
    srand(1);
    for (int round = 0; round < 200000; round++) {
        size_t len = (size_t)rand() % sizeof s;
        for (size_t i = 0; i < len; i++)
            s[i] = rand() % 8 ? (unsigned char)(0x20 + rand() % 0x5f) : alphabet[rand() % 16];
        agree(s, len);
    }
    agree((const unsigned char *)"", 0);
}
