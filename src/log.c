/* log.c - see log.h. */
#include "config.h"

#include "log.h"

#include <fuse_lowlevel.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

/* Both are set at startup (and syslog once more after daemonizing); atomics keep readers on
 * other threads well defined. */
static atomic_int g_level = LOG_LVL_WARN;
static atomic_bool g_syslog;

static const char *const level_names[] = {"error", "warning", "info", "debug"};
static const int syslog_prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};

/* Copy s into buf with control characters (and DEL) as \xNN, cut to fit. */
static void escape_controls(const char *s, char *buf, size_t buflen)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (; *s && o + 5 < buflen; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f) {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[c >> 4];
            buf[o++] = hex[c & 15];
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o] = '\0';
}

__attribute__((format(printf, 4, 0))) static void log_vwrite(enum log_level level, const char *func, int line, const char *fmt,
                       va_list ap)
{
    char raw[2048], msg[2048];
    vsnprintf(raw, sizeof raw, fmt, ap);
    /* Every message, whatever its arguments: a control character left in a string from the
     * node or a user (a jansson error quoting a body, a version string, a path a caller forgot
     * to pass through log_safe) must not start a forged line. Backslashes stay, so text that
     * log_safe already escaped reads the same. */
    escape_controls(raw, msg, sizeof msg);
    if (atomic_load(&g_syslog)) {
        if (func)
            syslog(syslog_prio[level], "%s:%d: %s", func, line, msg);
        else
            syslog(syslog_prio[level], "%s", msg);
    } else if (func && level == LOG_LVL_DEBUG) {
        fprintf(stderr, "ipfsfs: %s: %s:%d: %s\n", level_names[level], func, line, msg);
    } else {
        fprintf(stderr, "ipfsfs: %s: %s\n", level_names[level], msg);
    }
}

/* libfuse hands us its format string; it is trusted (libfuse's own). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static void fuse_log_bridge(enum fuse_log_level flevel, const char *fmt, va_list ap)
{
    enum log_level level;
    if (flevel <= FUSE_LOG_ERR)
        level = LOG_LVL_ERR;
    else if (flevel == FUSE_LOG_WARNING)
        level = LOG_LVL_WARN;
    else if (flevel <= FUSE_LOG_INFO)
        level = LOG_LVL_INFO;
    else
        level = LOG_LVL_DEBUG;
    if (!log_enabled(level))
        return;
    /* libfuse messages end with a newline already; strip it. */
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n')
        msg[--n] = '\0';
    /* Many say "fuse: ..." themselves: once is enough. */
    log_msg(level, NULL, 0, "%s%s", strncmp(msg, "fuse: ", 6) == 0 ? "" : "fuse: ", msg);
}
#pragma GCC diagnostic pop

void log_init(enum log_level level, bool use_syslog)
{
    atomic_store(&g_level, (int)level);
    log_set_syslog(use_syslog);
    fuse_set_log_func(fuse_log_bridge);
}

void log_set_syslog(bool use_syslog)
{
    if (use_syslog)
        openlog("ipfsfs", LOG_PID, LOG_DAEMON);
    atomic_store(&g_syslog, use_syslog);
}

bool log_enabled(enum log_level level)
{
    return (int)level <= atomic_load(&g_level);
}

void log_msg(enum log_level level, const char *func, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, func, line, fmt, ap);
    va_end(ap);
}

const char *log_safe(const char *s, size_t len, char *buf, size_t buflen)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (buflen == 0)
        return buf;
    for (size_t i = 0; i < len && o + 5 < buflen; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[c >> 4];
            buf[o++] = hex[c & 15];
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o] = '\0';
    return buf;
}
