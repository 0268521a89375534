/* log.h - the one logging facility: levels, function and line, stderr or syslog.
 * Thread-safe (each message is written with one call). */
#ifndef IPFSFS_LOG_H
#define IPFSFS_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_LVL_ERR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Set the threshold and destination. With use_syslog the messages go to syslog(3) under
 * "ipfsfs"; otherwise to stderr. Also routes libfuse's own messages here. */
void log_init(enum log_level level, bool use_syslog);
void log_set_syslog(bool use_syslog);
bool log_enabled(enum log_level level);

void log_msg(enum log_level level, const char *func, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A name from the node, fit for a log line: control characters and backslashes escaped as
 * \xNN (so a hostile name cannot forge lines), cut to what fits. Returns buf. */
const char *log_safe(const char *s, size_t len, char *buf, size_t buflen);

#define LOG(level, ...)                                                                        \
    do {                                                                                       \
        if (log_enabled(level))                                                                \
            log_msg(level, __func__, __LINE__, __VA_ARGS__);                                   \
    } while (0)
#define log_err(...) LOG(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...) LOG(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) LOG(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) LOG(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
