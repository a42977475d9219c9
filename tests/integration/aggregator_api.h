/* aggregator_api.h - the stats API calls the aggregator integration suites
 * share: a v1 GET and a v2 POST with the suite's token, each asserting the
 * status, and two substring expectations. Include after aggregator_env.h
 * and after defining TOKEN; every function is static and marked unused,
 * like aggregator_env.h's. */
#ifndef VEIL_IT_AGGREGATOR_API_H
#define VEIL_IT_AGGREGATOR_API_H

#include <cjson/cJSON.h>

#include "aggregator_env.h"

#ifndef TOKEN
#error "define TOKEN (the suite's --api_token) before including aggregator_api.h"
#endif

/* GET path with the token; asserts the status `want`; the body (free it). */
static IT_UNUSED char *api(int port, const char *path, int want)
{
    char *body = NULL;
    int code = harness_http(port, "GET", path, "Authorization: Bearer " TOKEN "\r\n", NULL, 0,
                            &body, NULL);
    cr_assert_eq(code, want, "%s -> %d %s", path, code, body ? body : "");
    return body;
}

/* POST body to /api/v2/query with the token; asserts the status `want` and
 * a JSON answer; the parsed answer (cJSON_Delete it). */
static IT_UNUSED cJSON *v2(int port, const char *body, int want)
{
    char *resp = NULL;
    int code = harness_http(port, "POST", "/api/v2/query",
                            "Authorization: Bearer " TOKEN "\r\nContent-Type: application/json\r\n",
                            body, strlen(body), &resp, NULL);
    cr_assert_eq(code, want, "%s -> %d %s", body, code, resp ? resp : "");
    cJSON *doc = cJSON_Parse(resp);
    cr_assert_not_null(doc, "not JSON: %s", resp);
    free(resp);
    return doc;
}

#define expect_has(body, needle) \
    cr_expect(strstr((body), (needle)) != NULL, "missing %s in %s", (needle), (body))
#define expect_lacks(body, needle) \
    cr_expect(strstr((body), (needle)) == NULL, "unexpected %s in %s", (needle), (body))

#endif
