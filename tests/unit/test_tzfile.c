/* test_tzfile.c - local time from Debian's tzdata files (common/tzfile.c):
 * fixed and daylight-saving zones, the switch itself, local days and hours
 * around midnight, UTC names, and refused files. */
#include <criterion/criterion.h>
#include <string.h>

#include "tzfile.h"

#define DST_NY_2026 1772953200LL /* 2026-03-08 07:00 UTC: 02:00 EST becomes 03:00 EDT */
#define DEC6_1430 1796567400LL   /* 2026-12-06 14:30 UTC */
#define DEC6 20793               /* day number of 2026-12-06 */

Test(tzfile, fixed_and_daylight_saving_offsets)
{
    const struct tz_zone *tokyo = tz_get("Asia/Tokyo"), *ny = tz_get("America/New_York");
    cr_assert_not_null(tokyo);
    cr_assert_not_null(ny);
    cr_assert_eq(tz_offset(tokyo, DEC6_1430), 9 * 3600);
    cr_assert_eq(tz_offset(ny, DEC6_1430), -5 * 3600);
    cr_assert_eq(tz_offset(ny, DST_NY_2026 - 1), -5 * 3600, "EST until the switch");
    cr_assert_eq(tz_offset(ny, DST_NY_2026), -4 * 3600, "EDT from it");
    cr_assert_eq(tz_get("Asia/Tokyo"), tokyo, "loaded once and kept");
}

Test(tzfile, local_day_and_hour_around_midnight)
{
    const struct tz_zone *tokyo = tz_get("Asia/Tokyo");
    int32_t day;
    int hour;
    tz_local(tokyo, DEC6_1430, &day, &hour); /* 23:30 in Tokyo */
    cr_assert_eq(day, DEC6);
    cr_assert_eq(hour, 23);
    tz_local(tokyo, DEC6_1430 + 3600, &day, &hour); /* 00:30 the next day */
    cr_assert_eq(day, DEC6 + 1);
    cr_assert_eq(hour, 0);
    tz_local(NULL, DEC6_1430, &day, &hour); /* UTC */
    cr_assert_eq(day, DEC6);
    cr_assert_eq(hour, 14);
    tz_local(NULL, -1, &day, &hour); /* before 1970: floor, not truncation */
    cr_assert_eq(day, -1);
    cr_assert_eq(hour, 23);
}

Test(tzfile, utc_and_unusable_names_are_utc)
{
    const char *names[] = {"", "UTC", "Etc/UTC", "Nowhere/Atlantis", "../etc/passwd",
                           "zone1970.tab"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        cr_expect_null(tz_get(names[i]), "%s", names[i]);
    cr_assert_eq(tz_offset(NULL, DEC6_1430), 0);
}

Test(tzfile, damaged_files_are_refused)
{
    unsigned char buf[64] = "TZif2";
    cr_assert_null(tz_parse(buf, 10), "cut short");
    cr_assert_null(tz_parse((const unsigned char *)"not a zone at all, really not one at all"
                            "........",
                            48));
    memset(buf + 20, 0xff, 24); /* absurd counts */
    cr_assert_null(tz_parse(buf, sizeof buf));
}
