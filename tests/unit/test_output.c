/* test_output.c - JSON escaping, CSV quoting and the formula guard of the
 * stats API's writers. JSON output is re-parsed with cJSON. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#include "output.h"

/* The buffer's contents as a malloc'd string. */
static char *drain(struct evbuffer *b)
{
    size_t len = evbuffer_get_length(b);
    char *s = malloc(len + 1);
    evbuffer_remove(b, s, len);
    s[len] = '\0';
    return s;
}

static char *json_str(const char *s, size_t len)
{
    struct evbuffer *b = evbuffer_new();
    output_json_string(b, s, len);
    char *out = drain(b);
    evbuffer_free(b);
    return out;
}

static char *csv_field(const char *s)
{
    struct evbuffer *b = evbuffer_new();
    output_csv_field(b, s, strlen(s));
    char *out = drain(b);
    evbuffer_free(b);
    return out;
}

static void expect_json(const char *in, const char *want)
{
    char *got = json_str(in, strlen(in));
    cr_expect_str_eq(got, want, "input %s", in);
    free(got);
}

Test(output, json_escapes)
{
    expect_json("plain /path", "\"plain /path\"");
    expect_json("a\"b\\c", "\"a\\\"b\\\\c\"");
    expect_json("l1\nl2\r\t", "\"l1\\nl2\\r\\t\"");
    expect_json("\x01\x1f\x7f", "\"\\u0001\\u001f\\u007f\"");
    expect_json("</script><b>&", "\"\\u003c/script\\u003e\\u003cb\\u003e\\u0026\"");
    expect_json("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
    expect_json("\xe2\x80\xa8\xe2\x80\xa9", "\"\\u2028\\u2029\"");
    /* Invalid UTF-8: lone continuation, overlong, surrogate, truncated. */
    expect_json("a\x80z", "\"a\\ufffdz\"");
    expect_json("\xc0\xaf", "\"\\ufffd\\ufffd\"");
    expect_json("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"");
    expect_json("x\xe2\x82", "\"x\\ufffd\\ufffd\"");
}

Test(output, json_embedded_nul_is_escaped)
{
    char *got = json_str("a\0b", 3);
    cr_expect_str_eq(got, "\"a\\u0000b\"");
    free(got);
}

Test(output, json_strings_round_trip_through_a_parser)
{
    const char *inputs[] = {"", "x", "\"\\/\b\f\n\r\t", "<>&'", "\xc3\xa9\xe2\x82\xac",
                            "\x01\x02 ctrl", "(other)"};
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        char *doc = json_str(inputs[i], strlen(inputs[i]));
        cJSON *j = cJSON_Parse(doc);
        cr_assert_not_null(j, "%s did not parse", doc);
        cr_expect(cJSON_IsString(j));
        cr_expect_str_eq(j->valuestring, inputs[i]);
        cJSON_Delete(j);
        free(doc);
    }
}

Test(output, csv_quoting_rfc4180)
{
    const struct {
        const char *in, *want;
    } cases[] = {
        {"plain", "plain"},
        {"", ""},
        {"a,b", "\"a,b\""},
        {"say \"hi\"", "\"say \"\"hi\"\"\""},
        {"two\nlines", "\"two\nlines\""},
        {"cr\rhere", "\"cr\rhere\""},
        {"/path?utm_source=x", "/path?utm_source=x"},
        {"a;b", "\"a;b\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = csv_field(cases[i].in);
        cr_expect_str_eq(got, cases[i].want, "input [%s]", cases[i].in);
        free(got);
    }
}

Test(output, csv_formula_guard)
{
    const struct {
        const char *in, *want;
    } cases[] = {
        {"=HYPERLINK(\"http://x\")", "\"'=HYPERLINK(\"\"http://x\"\")\""},
        {"+1", "\"'+1\""},
        {"-1+1", "\"'-1+1\""},
        {"@SUM(A1)", "\"'@SUM(A1)\""},
        {"\tlead", "\"'\tlead\""},
        {"\rlead", "\"'\rlead\""},
        {"=1,2", "\"'=1,2\""},
        {"a=b", "a=b"},
        {"1-2", "1-2"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = csv_field(cases[i].in);
        cr_expect_str_eq(got, cases[i].want, "input [%s]", cases[i].in);
        free(got);
    }
}

/* Issue 13 finding 7: a page path that is a formula cell in a spreadsheet
 * splitting on ';' (German, French locales). Whichever separator the
 * reader uses, the field must be one quoted cell that starts no formula. */
Test(output, csv_injection_after_either_separator)
{
    const char *attack = "/a;=cmd|' /C calc'!A0";
    char *got = csv_field(attack);
    cr_expect_str_eq(got, "\"/a;=cmd|' /C calc'!A0\"");
    free(got);
    got = csv_field("/a,=cmd|' /C calc'!A0");
    cr_expect_str_eq(got, "\"/a,=cmd|' /C calc'!A0\"");
    free(got);
    /* A minimal reader for either separator: quoted fields are one cell;
     * no cell may start with a formula character. */
    const char *seps = ",;";
    for (int k = 0; k < 2; k++) {
        got = csv_field(attack);
        bool in_quotes = false, cell_start = true;
        for (const char *p = got; *p; p++) {
            if (cell_start && !in_quotes)
                cr_expect(strchr("=+-@\t\r", *p) == NULL, "a cell starts a formula [%s]", got);
            cell_start = false;
            if (*p == '"')
                in_quotes = !in_quotes;
            else if (*p == seps[k] && !in_quotes)
                cell_start = true;
        }
        free(got);
    }
}

static const char *const cols[] = {"page", "visitors", "pageviews"};

static struct output_table sample(struct output_cell *cells)
{
    cells[0] = output_str("/a,\"b\"", 6);
    cells[1] = output_num(20);
    cells[2] = output_num(31);
    cells[3] = output_str("=cmd", 4);
    cells[4] = output_num(0);
    cells[5] = output_num(-3);
    struct output_table t = {3, cols, 2, cells};
    return t;
}

Test(output, json_rows_and_aggregate_shapes)
{
    struct output_cell cells[6];
    struct output_table t = sample(cells);
    struct evbuffer *b = evbuffer_new();
    output_json_rows(b, &t);
    char *rows = drain(b);
    cr_expect_str_eq(rows, "[{\"page\": \"/a,\\\"b\\\"\", \"visitors\": 20, \"pageviews\": 31}, "
                           "{\"page\": \"=cmd\", \"visitors\": 0, \"pageviews\": -3}]");
    cJSON *j = cJSON_Parse(rows);
    cr_assert_not_null(j);
    cr_expect_eq(cJSON_GetArraySize(j), 2);
    cJSON_Delete(j);
    free(rows);

    const char *const acols[] = {"visitors", "bounce_rate"};
    struct output_cell acells[2] = {output_num(20), output_num(45)};
    struct output_table a = {2, acols, 1, acells};
    output_json_aggregate(b, &a);
    char *agg = drain(b);
    cr_expect_str_eq(agg, "{\"visitors\": {\"value\": 20}, \"bounce_rate\": {\"value\": 45}}");
    free(agg);

    struct output_table empty = {3, cols, 0, NULL};
    output_json_rows(b, &empty);
    output_json_aggregate(b, &empty);
    char *e = drain(b);
    cr_expect_str_eq(e, "[]{}");
    free(e);
    evbuffer_free(b);
}

Test(output, csv_table)
{
    struct output_cell cells[6];
    struct output_table t = sample(cells);
    struct evbuffer *b = evbuffer_new();
    output_csv(b, &t);
    char *csv = drain(b);
    cr_expect_str_eq(csv, "page,visitors,pageviews\r\n"
                          "\"/a,\"\"b\"\"\",20,31\r\n"
                          "\"'=cmd\",0,-3\r\n");
    free(csv);
    evbuffer_free(b);
}
