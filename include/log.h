/* log.h - the one logging facility of both daemons.
 *
 * Lines go to stderr as "<iso-time> <prog> <LEVEL> message".  A log line
 * must never contain a client IP, a User-Agent or a URL query string: pass
 * only derived, non-identifying values (site id, path, counts, reasons). */
#ifndef VEIL_LOG_H
#define VEIL_LOG_H

enum log_level { LOG_LVL_DEBUG = 0, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };

/* Set the program name shown in each line and the lowest level written.
 * `prog` must outlive all logging (a string literal or argv[0]). */
void log_init(const char *prog, enum log_level min_level);

/* Parse "debug|info|warn|error"; returns -1 for anything else. */
int log_level_parse(const char *name);

/* Write one line at `level` (dropped if below the minimum). Thread-safe:
 * each line is formatted into a local buffer and written with one write(2). */
void log_write(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_write(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_info(...)  log_write(LOG_LVL_INFO, __VA_ARGS__)
#define log_warn(...)  log_write(LOG_LVL_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOG_LVL_ERROR, __VA_ARGS__)

#endif
