/* Clocks and the two date formats ACS uses. Names of days and months are fixed here rather than
 * taken from strftime so the locale can never change a signed header. */
#include "core/clock.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"

static const char clock_days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char clock_months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

int64_t clock_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void clock_http_date(time_t t, char out[CLOCK_HTTP_DATE_LEN])
{
    struct tm tm;
    char tmp[64];

    /* Formatted into a roomy buffer first: a year past 9999 must truncate, not overflow. */
    gmtime_r(&t, &tm);
    snprintf(tmp, sizeof(tmp), "%s, %02d %s %04d %02d:%02d:%02d GMT", clock_days[tm.tm_wday],
             tm.tm_mday, clock_months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
             tm.tm_sec);
    memcpy(out, tmp, CLOCK_HTTP_DATE_LEN - 1);
    out[CLOCK_HTTP_DATE_LEN - 1] = '\0';
}

/* Reads exactly n decimal digits. */
static int clock_digits(const char **p, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return TV_ERR_PARSE;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

static int clock_expect(const char **p, char c)
{
    if (**p != c)
        return TV_ERR_PARSE;
    (*p)++;
    return 0;
}

static int clock_check_tm(const struct tm *tm)
{
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    if (tm->tm_mon < 0 || tm->tm_mon > 11 || tm->tm_mday < 1 || tm->tm_mday > mdays[tm->tm_mon] ||
        tm->tm_hour > 23 || tm->tm_min > 59 || tm->tm_sec > 60 || tm->tm_year < 70)
        return TV_ERR_PARSE;
    return 0;
}

int clock_parse_http_date(const char *s, time_t *out)
{
    struct tm tm;
    const char *p = s;
    int year, wday = -1;
    time_t t;

    memset(&tm, 0, sizeof(tm));
    if (strlen(s) != CLOCK_HTTP_DATE_LEN - 1)
        return TV_ERR_PARSE;
    for (int i = 0; i < 7; i++)
        if (memcmp(p, clock_days[i], 3) == 0)
            wday = i;
    if (wday < 0)
        return TV_ERR_PARSE;
    p += 3;
    if (clock_expect(&p, ',') || clock_expect(&p, ' ') || clock_digits(&p, 2, &tm.tm_mday) ||
        clock_expect(&p, ' '))
        return TV_ERR_PARSE;
    tm.tm_mon = -1;
    for (int i = 0; i < 12; i++)
        if (memcmp(p, clock_months[i], 3) == 0)
            tm.tm_mon = i;
    p += 3;
    if (clock_expect(&p, ' ') || clock_digits(&p, 4, &year) || clock_expect(&p, ' ') ||
        clock_digits(&p, 2, &tm.tm_hour) || clock_expect(&p, ':') ||
        clock_digits(&p, 2, &tm.tm_min) || clock_expect(&p, ':') ||
        clock_digits(&p, 2, &tm.tm_sec) || strcmp(p, " GMT") != 0)
        return TV_ERR_PARSE;
    tm.tm_year = year - 1900;
    if (clock_check_tm(&tm))
        return TV_ERR_PARSE;
    t = timegm(&tm);
    if (t == (time_t)-1)
        return TV_ERR_PARSE;
    *out = t;
    return 0;
}

void clock_iso8601(int64_t ms, char out[CLOCK_ISO_LEN])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char tmp[80];

    gmtime_r(&t, &tm);
    snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    memcpy(out, tmp, CLOCK_ISO_LEN - 1);
    out[CLOCK_ISO_LEN - 1] = '\0';
}

int clock_parse_iso8601(const char *s, int64_t *out_ms)
{
    struct tm tm;
    const char *p = s;
    int year, mon, frac_ms = 0, offset_min = 0;
    time_t t;

    memset(&tm, 0, sizeof(tm));
    if (strlen(s) > 40)
        return TV_ERR_PARSE;
    if (clock_digits(&p, 4, &year) || clock_expect(&p, '-') || clock_digits(&p, 2, &mon) ||
        clock_expect(&p, '-') || clock_digits(&p, 2, &tm.tm_mday) ||
        (*p != 'T' && *p != 't' && *p != ' '))
        return TV_ERR_PARSE;
    p++;
    if (clock_digits(&p, 2, &tm.tm_hour) || clock_expect(&p, ':') ||
        clock_digits(&p, 2, &tm.tm_min) || clock_expect(&p, ':') || clock_digits(&p, 2, &tm.tm_sec))
        return TV_ERR_PARSE;
    if (*p == '.') {
        int n = 0, scale = 100;
        p++;
        while (*p >= '0' && *p <= '9') {
            if (++n > 9)
                return TV_ERR_PARSE;
            frac_ms += (*p - '0') * scale;
            scale /= 10;
            p++;
        }
        if (n == 0)
            return TV_ERR_PARSE;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, hh, mm;
        p++;
        if (clock_digits(&p, 2, &hh) || clock_expect(&p, ':') || clock_digits(&p, 2, &mm) ||
            hh > 23 || mm > 59)
            return TV_ERR_PARSE;
        offset_min = sign * (hh * 60 + mm);
    } else {
        return TV_ERR_PARSE;
    }
    if (*p != '\0')
        return TV_ERR_PARSE;
    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    if (clock_check_tm(&tm))
        return TV_ERR_PARSE;
    t = timegm(&tm);
    if (t == (time_t)-1)
        return TV_ERR_PARSE;
    *out_ms = ((int64_t)t - (int64_t)offset_min * 60) * 1000 + frac_ms;
    return 0;
}

void clock_sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};

    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}
