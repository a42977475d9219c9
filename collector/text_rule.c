/* text_rule.c - invisible and reordering characters in client text (see
 * text_rule.h). Never copies, keeps or logs the text it looks at. */
#include "text_rule.h"

#include "ctl_scan.h"

/* The multi-byte characters of the rule start with 0xC2 (C1 controls),
 * 0xD8 (U+061C) or 0xE2 (U+200E..U+2069); pure ASCII text never gets past
 * the word scan of ctl_scan and one byte test per byte. */
bool text_rule_refuses(const char *s, size_t len)
{
    if (ctl_scan(s, len, false))
        return true;
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i + 1 < len; i++) {
        if (p[i] < 0xC2)
            continue;
        if (p[i] == 0xC2 && p[i + 1] >= 0x80 && p[i + 1] <= 0x9F)
            return true; /* U+0080..U+009F */
        if (p[i] == 0xD8 && p[i + 1] == 0x9C)
            return true; /* U+061C */
        if (p[i] == 0xE2 && i + 2 < len) {
            unsigned b1 = p[i + 1], b2 = p[i + 2];
            if (b1 == 0x80 && (b2 == 0x8E || b2 == 0x8F || (b2 >= 0xAA && b2 <= 0xAE)))
                return true; /* U+200E U+200F U+202A..U+202E */
            if (b1 == 0x81 && b2 >= 0xA6 && b2 <= 0xA9)
                return true; /* U+2066..U+2069 */
        }
    }
    return false;
}
