/* test_registry.c - the parts of the site registry reader that need no
 * Redis: goal patterns and time-zone validation (registry.h). */
#include <criterion/criterion.h>
#include <string.h>

#include "registry.h"
#include "util.h"

static struct reg_site with_goals(const char *goals)
{
    struct reg_site s;
    memset(&s, 0, sizeof s);
    str_copy(s.goals, sizeof s.goals, goals, strlen(goals));
    return s;
}

Test(registry, goals_match_events_and_pages_with_wildcards)
{
    struct reg_site s = with_goals("event:Signup\npage:/blog/*\nevent:Download*\npage:/a*b");
    cr_expect(registry_goal_matches(&s, "Signup", "/x"));
    cr_expect_not(registry_goal_matches(&s, "signup", "/x"), "event names are case-sensitive");
    cr_expect_not(registry_goal_matches(&s, "Signups", "/x"));
    cr_expect(registry_goal_matches(&s, "Download PDF", "/x"));
    cr_expect(registry_goal_matches(&s, "pageview", "/blog/"));
    cr_expect(registry_goal_matches(&s, "pageview", "/blog/2026/post"));
    cr_expect_not(registry_goal_matches(&s, "pageview", "/blog"));
    cr_expect_not(registry_goal_matches(&s, "click", "/blog/x"), "page goals are pageviews only");
    cr_expect(registry_goal_matches(&s, "pageview", "/ab"));
    cr_expect(registry_goal_matches(&s, "pageview", "/a/x/b"));
    cr_expect_not(registry_goal_matches(&s, "pageview", "/a/x/bc"));
    struct reg_site none = with_goals("");
    cr_expect_not(registry_goal_matches(&none, "Signup", "/"));
}

Test(registry, time_zones_exist_under_zoneinfo)
{
    cr_expect(registry_timezone_valid("Europe/Paris"));
    cr_expect(registry_timezone_valid("Etc/UTC"));
    cr_expect(registry_timezone_valid("America/Argentina/Buenos_Aires"));
    cr_expect_not(registry_timezone_valid("Mars/Olympus"));
    cr_expect_not(registry_timezone_valid("../../etc/passwd"));
    cr_expect_not(registry_timezone_valid("/etc/localtime"));
    cr_expect_not(registry_timezone_valid("zone1970.tab"), "not a TZif file");
    cr_expect_not(registry_timezone_valid(""));
    cr_expect_not(registry_timezone_valid("Europe/Paris\n"));
}
