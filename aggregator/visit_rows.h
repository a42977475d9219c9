/* visit_rows.h - a visit's breakdown rows while it is open: per-row
 * bounces (as non-bounces, b:<dim>:nbn: bounces = vis - nbn) and visit
 * seconds (b:<dim>:dur) and the exit page (b:exit_page:vis|nbn|dur,
 * u:exit_page:<row>), docs/AGGREGATOR.md
 * "Per-row bounces, durations and exit pages".
 *
 * A visit is counted under one row per visit dimension when it starts (its
 * `vis` row, "(other)" included). Its bounce and its seconds change later,
 * so the rows it was counted under are kept with the open visit: in the
 * shard's memory and in the checkpoint, encoded as "<len>:<bytes>" per
 * rollup_visit_dim in order (no separator), then its exit row the same
 * way or "=" when it is the entry page row (the codec: visit_rows_codec.c,
 * fuzzed as fuzz target checkpoint). The plan part (visit_rows.c) adds up a visit's changes over the batch and writes
 * them once per visit and batch (visit_rows_finish), so the cost per event
 * is two additions; a page view that moves the exit to another row costs a
 * row lookup and a HyperLogLog argument.
 *
 * Never does I/O and never logs; holds row values (paths, sources, ...),
 * never a visitor hash beyond the plan's own arguments. */
#ifndef VEIL_VISIT_ROWS_H
#define VEIL_VISIT_ROWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "rollup.h"

#define VISIT_ROWS (ROLLUP_V_COUNT + 1)  /* the visit dimensions, then the exit page */
#define VISIT_ROW_EXIT ROLLUP_V_COUNT
#define VISIT_ROW_VALUE_MAX 256          /* a row other than a path: longer ones are not kept
                                            (the visit's rows are then unknown) */
/* The encoded rows of one visit (without its exit row): entry page, 17
 * shorter rows, "<len>:" each. */
#define VISIT_ROWS_BLOB_MAX ((EV_PATH_MAX - 1) + (ROLLUP_V_COUNT - 1) * VISIT_ROW_VALUE_MAX + \
                             ROLLUP_V_COUNT * 5)
/* ... and its exit row: the most a checkpoint value adds for them. */
#define VISIT_ROWS_CHECKPOINT_MAX (VISIT_ROWS_BLOB_MAX + (EV_PATH_MAX - 1) + 5)

/* Whether rows of `slot` (a rollup_visit_dim, or VISIT_ROW_EXIT) are
 * kept: the visit dimensions the stats API publishes (not
 * browser_version) and the exit page. */
bool visit_rows_slot_kept(size_t slot);

/* In a checkpoint value, this byte in place of the exit row item says
 * "the same as the entry page row" (no item starts with it). */
#define VISIT_ROWS_EXIT_IS_ENTRY '='

/* Whether exit[0..exit_len) equals the entry page row of the encoded rows
 * rows[0..rows_len). */
bool visit_rows_exit_is_entry(const char *rows, size_t rows_len, const char *exit,
                              size_t exit_len);

/* "<len>:<bytes>" of s[0..len) into out (at most cap bytes, not
 * terminated); its length, 0 when it does not fit. */
size_t visit_rows_put(const char *s, size_t len, char *out, size_t cap);

/* The length of "<len>:" for an item of len bytes. */
size_t visit_rows_prefix_len(size_t len);

/* Encode rows[0..ROLLUP_V_COUNT) (NULL or "" = no row; rows of
 * dimensions without per-row counts, browser_version, are left out) into
 * out (cap bytes); its length, 0 when a row is longer than allowed
 * (VISIT_ROW_VALUE_MAX, a path EV_PATH_MAX - 1) or cap is too small. */
size_t visit_rows_encode(const char *const *rows, char *out, size_t cap);

/* Scan n items "<len>:<bytes>" from s[0..len): item i is items[i] (not
 * terminated) of lens[i] bytes; *used is the bytes read. False when s does
 * not hold n well-formed items. */
bool visit_rows_scan(const char *s, size_t len, size_t n, const char **items, size_t *lens,
                     size_t *used);

/* ---- the plan's part (plan.c calls these; the state lives in the plan) ---- */

struct plan;
struct shard_state;
struct shard_session;
struct visit_effect;

/* Forget the batch / free everything (plan_reset, plan_free). */
void visit_rows_reset(struct plan *p);
void visit_rows_free(struct plan *p);

/* Step 1b (after plan_collect, before the rows are loaded): the exit_page
 * breakdown of the day each open visit of the batch started on, so that a
 * page view can move its exit there. */
void visit_rows_collect(struct plan *p, const struct shard_state *st, const struct rollup *r);

/* Session i of the batch (of n) was loaded from memory: `ss` (NULL when it
 * has none). Call for every i in order from plan_load_sessions. */
void visit_rows_load(struct plan *p, size_t i, size_t n, const struct shard_session *ss);

/* One event of session i did `fx` (visit.c); `rows` are the rows the
 * plan counted its visit under when fx->new_visit (NULL entries: no row),
 * `page` the event's path, `visitor` its visitor hash. */
void visit_rows_hit(struct plan *p, const struct shard_state *st, size_t i,
                    const struct visit_effect *fx, const char *const *rows, const char *page,
                    const char *visitor);

/* After the last hit: write every visit's changes. */
void visit_rows_finish(struct plan *p, const struct shard_state *st);

/* Fill the rows part of the stored form of session i (shard_session_put
 * and the checkpoint): rows, exit row, exit_ts; NULLs when unknown. */
void visit_rows_session(const struct plan *p, size_t i, struct shard_session *out);

#endif
