/* The upstream budget's queue and threads (service/upstream_budget.h). The engine thread asks
 * (ask: a short critical section, never the store); the budget thread takes slots from the
 * store for the queued calls and answers them; the reaper thread refuses calls whose deadline
 * comes while they wait, and never touches the store, so a slow or failing store (a take may
 * wait seconds for SQLite's lock or PostgreSQL's timeouts) keeps no call past its deadline.
 * Lock order: the budget's lock, then the ACS client's (acs_client_gate_answer); the engine
 * never holds its own lock while asking. Condition variables wait on CLOCK_MONOTONIC. */
#include "service/upstream_budget.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "core/climit.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "store/acs_budget.h"

/* The callers waiting for one operation, hashed with a secret key (callers' names are chosen
 * by the public: no one can aim a crowd at one chain); up to QUEUE_MAX callers make chains of
 * about 25 at worst, the usual few hundred one each. */
#define HASH_BUCKETS 4096
#define MIN_RETRY_MS 5         /* a short take whose oldest slot is already free: slots locked */
#define STORE_ERR_RETRY_MS 200 /* after a failed take */
#define IDLE_WAIT_MS 1000      /* longest sleep without work */
/* An attempt started just before its deadline is of no use (it times out on the call's own
 * deadline, and ACS may still count it): a call is refused when its turn would leave it less
 * than a useful attempt's time (upstream_budget_opts.min_attempt_ms, at most half of the time
 * it had left when it asked), and expired at that point. Expiry is batched within
 * EXPIRE_BATCH_MS, so a storm of deadlines costs a few scans, not one each. */
#define MIN_ATTEMPT_DEFAULT_MS 1000
#define EXPIRE_BATCH_MS 50
/* A take in the store for this long makes a call that expires meanwhile a store problem (the
 * 503 then says the store is failing, not that the quota is spent). */
#define STORE_SLOW_MS 250
#define STORE_REFUSE_RETRY_MS 1000
#define QUEUE_MIN 64
#define QUEUE_MAX 100000
#define ERR_LOG_EVERY_MS 5000

struct ticket {
    struct ticket *next; /* FIFO of its caller */
    struct acs_client *client;
    void *call;
    int64_t latest_mono; /* the last moment a grant is of use: deadline - a useful attempt */
    uint64_t gen; /* the operation's short_gen when it joined: a later short take made it wait */
};

/* The calls of one caller waiting for one operation; in the round while it has any. */
struct caller {
    struct caller *hnext;         /* hash chain */
    struct caller *rnext, *rprev; /* the round (circular) */
    struct ticket *head, *tail;
    size_t n;
    char name[ACS_CALLER_MAX];
};

struct opq {
    struct ratelimit rl;
    struct caller *bucket[HASH_BUCKETS];
    uint8_t key[16];     /* the hash key, random per budget */
    struct caller *ring; /* the caller served next */
    size_t queued, ncallers;
    int64_t next_free_mono; /* after a short take: when a slot frees; 0 when none is known */
    int64_t retry_mono;     /* no take before this */
    uint64_t short_gen;     /* takes that came short */
    int ensured;            /* this process made the N slots */
    int store_failing;      /* the last take failed */
    int64_t used, used_at_mono;
    uint64_t granted, waits, refusals, store_errors;
};

struct upstream_budget {
    struct acs_gate gate;
    struct store *store;
    struct budget_cfg cfg;
    size_t queue_max, caller_max;
    int64_t hold_ms;
    int64_t (*clock)(void *arg);
    void *clock_arg;
    pthread_mutex_t lock;
    pthread_cond_t wake; /* work for the thread */
    pthread_cond_t idle; /* the thread left the store */
    pthread_cond_t reap; /* an earlier expiry for the reaper */
    pthread_t thread, reaper;
    int thread_ok, reaper_ok, stopping, busy;
    int64_t busy_since; /* when the take in the store began (mono) */
    int64_t min_attempt_ms;
    int64_t next_expiry; /* earliest latest_mono among queued tickets; INT64_MAX: none */
    int last_op;
    int64_t last_err_log;
    struct opq op[ACS_OP_COUNT];
};

static size_t name_hash(const struct opq *o, const char *s)
{
    return (size_t)(climit_siphash(o->key, s, strlen(s)) % HASH_BUCKETS);
}

static struct caller *caller_find(struct opq *o, const char *name)
{
    struct caller *c = o->bucket[name_hash(o, name)];

    while (c != NULL && strcmp(c->name, name) != 0)
        c = c->hnext;
    return c;
}

/* Joins the end of the round: a new caller is served after each caller already waiting got
 * one more call, never after all of their calls. */
static void ring_add(struct opq *o, struct caller *c)
{
    if (o->ring == NULL) {
        c->rnext = c->rprev = c;
        o->ring = c;
        return;
    }
    c->rnext = o->ring;
    c->rprev = o->ring->rprev;
    o->ring->rprev->rnext = c;
    o->ring->rprev = c;
}

/* Unlinks a caller with no calls left and frees it. */
static void caller_drop(struct opq *o, struct caller *c)
{
    struct caller **pp = &o->bucket[name_hash(o, c->name)];

    if (c->rnext == c) {
        o->ring = NULL;
    } else {
        c->rprev->rnext = c->rnext;
        c->rnext->rprev = c->rprev;
        if (o->ring == c)
            o->ring = c->rnext;
    }
    while (*pp != c)
        pp = &(*pp)->hnext;
    *pp = c->hnext;
    o->ncallers--;
    free(c);
}

/* The next call in the round: the current caller's oldest; the round moves on. NULL when
 * nobody waits. */
static struct ticket *ticket_pop(struct opq *o)
{
    struct caller *c = o->ring;
    struct ticket *t = c != NULL ? c->head : NULL;

    if (t == NULL)
        return NULL;
    c->head = t->next;
    if (c->head == NULL)
        c->tail = NULL;
    c->n--;
    o->queued--;
    o->ring = c->rnext;
    if (c->n == 0)
        caller_drop(o, c);
    return t;
}

/* When a call with `ahead` calls before it should get its slot (monotonic ms). */
static int64_t fit_at(const struct upstream_budget *b, const struct opq *o, int64_t now,
                      int64_t ahead)
{
    return budget_fit_at(o->next_free_mono, now, ahead, &o->rl, b->hold_ms);
}

/* Whether a call ending now without a slot ends because of the store rather than the quota:
 * the last take of its operation failed, or a take has been in the store for a while. */
static int store_trouble(const struct upstream_budget *b, const struct opq *o, int64_t now)
{
    return o->store_failing || (b->busy && now - b->busy_since >= STORE_SLOW_MS);
}

static void refuse(const struct upstream_budget *b, struct opq *o, struct ticket *t, int64_t now,
                   int64_t wait_ms)
{
    enum acs_gate_verdict v = ACS_GATE_REFUSE;

    if (store_trouble(b, o, now)) {
        v = ACS_GATE_REFUSE_STORE;
        wait_ms = STORE_REFUSE_RETRY_MS;
    }
    o->refusals++;
    acs_client_gate_answer(t->client, t->call, v, wait_ms < 0 ? 0 : wait_ms, 0);
    free(t);
}

/* What a drop_where predicate sees: the ticket, its place in its caller's queue, and the
 * predicate's own argument. */
struct drop_ctx {
    const struct upstream_budget *b;
    const struct opq *o;
    int64_t now;
    const void *arg;
};

/* Refuses (and removes) every queued ticket of o for which drop(ctx, t, j) holds (j: the
 * ticket's place in its caller's queue, from 0); recomputes the earliest expiry of those left
 * into *next. */
static void drop_where(struct upstream_budget *b, struct opq *o, int64_t now,
                       int (*drop)(const struct drop_ctx *x, const struct ticket *t, int64_t j),
                       const void *arg, int64_t *next)
{
    struct drop_ctx x = {.b = b, .o = o, .now = now, .arg = arg};
    struct caller *c = o->ring;
    size_t n = o->ncallers;

    for (size_t i = 0; i < n && c != NULL; i++) {
        struct caller *cn = c->rnext;
        struct ticket **pp = &c->head, *t;
        int64_t j = 0;
        c->tail = NULL;
        while ((t = *pp) != NULL) {
            if (drop(&x, t, j++)) {
                *pp = t->next;
                c->n--;
                o->queued--;
                refuse(b, o, t, now, fit_at(b, o, now, (int64_t)o->queued) - now);
                continue;
            }
            if (t->latest_mono < *next)
                *next = t->latest_mono;
            c->tail = t;
            pp = &t->next;
        }
        if (c->n == 0)
            caller_drop(o, c);
        c = cn;
    }
}

static int expired(const struct drop_ctx *x, const struct ticket *t, int64_t j)
{
    (void)j;
    return t->latest_mono <= x->now + EXPIRE_BATCH_MS;
}

static int of_client(const struct drop_ctx *x, const struct ticket *t, int64_t j)
{
    (void)j;
    return t->client == x->arg;
}

/* After a short take: the j-th call of a caller comes after at least j calls of every caller
 * in the round, so its turn is no sooner than this; one past its deadline is told at once
 * rather than at the deadline. */
static int turn_too_late(const struct drop_ctx *x, const struct ticket *t, int64_t j)
{
    int64_t ahead = j * (int64_t)x->o->ncallers;

    return fit_at(x->b, x->o, x->now, ahead) > t->latest_mono;
}

static void expire_all(struct upstream_budget *b, int64_t now)
{
    int64_t next = INT64_MAX;

    for (int i = 0; i < ACS_OP_COUNT; i++)
        if (b->op[i].queued > 0)
            drop_where(b, &b->op[i], now, expired, &now, &next);
    b->next_expiry = next;
}

/* ---- the gate (ACS engine thread) ---- */

static enum acs_gate_verdict gate_ask(void *ctx, const struct acs_gate_ask *a,
                                      int64_t *retry_after_ms)
{
    struct upstream_budget *b = ctx;
    struct opq *o;
    struct caller *c;
    struct ticket *t;
    int64_t now, ahead, at, useful, latest;
    size_t mine;
    enum acs_gate_verdict v = ACS_GATE_REFUSE;

    if ((unsigned)a->op >= ACS_OP_COUNT || b->cfg.op[a->op].off)
        return ACS_GATE_GO;
    now = clock_mono_ms();
    pthread_mutex_lock(&b->lock);
    o = &b->op[a->op];
    c = caller_find(o, a->caller);
    mine = c != NULL ? c->n : 0;
    /* In turns, this call comes after at most mine + 1 calls of every caller in the round. */
    ahead = (int64_t)(o->ncallers + (c == NULL)) * (int64_t)(mine + 1) - 1;
    if (ahead > (int64_t)o->queued)
        ahead = (int64_t)o->queued;
    at = fit_at(b, o, now, ahead);
    *retry_after_ms = at - now;
    /* A grant must leave a useful attempt's time; a call that asked with little time left (a
     * late retry) may use half of what it has. */
    useful = (a->deadline_mono_ms - now) / 2;
    if (useful > b->min_attempt_ms)
        useful = b->min_attempt_ms;
    latest = a->deadline_mono_ms - (useful > 0 ? useful : 0);
    if (b->stopping || at > latest || o->queued >= b->queue_max || mine >= b->caller_max)
        goto refused;
    t = calloc(1, sizeof *t);
    if (c == NULL && t != NULL) {
        c = calloc(1, sizeof *c);
        if (c != NULL) {
            size_t h = name_hash(o, a->caller);
            (void)buf_copy_str(c->name, sizeof c->name, a->caller);
            c->hnext = o->bucket[h];
            o->bucket[h] = c;
            ring_add(o, c);
            o->ncallers++;
        }
    }
    if (t == NULL || c == NULL) {
        free(t);
        goto refused;
    }
    *t = (struct ticket){
        .client = a->client, .call = a->call, .latest_mono = latest, .gen = o->short_gen};
    if (c->tail != NULL)
        c->tail->next = t;
    else
        c->head = t;
    c->tail = t;
    c->n++;
    o->queued++;
    if (latest < b->next_expiry) {
        b->next_expiry = latest;
        pthread_cond_signal(&b->reap);
    }
    pthread_cond_signal(&b->wake);
    v = ACS_GATE_WAIT;
    goto out;
refused:
    o->refusals++;
    if (!b->stopping && store_trouble(b, o, now)) {
        v = ACS_GATE_REFUSE_STORE;
        *retry_after_ms = STORE_REFUSE_RETRY_MS;
    }
out:
    pthread_mutex_unlock(&b->lock);
    return v;
}

static void gate_cancel(void *ctx, struct acs_client *client)
{
    struct upstream_budget *b = ctx;
    int64_t next = INT64_MAX, now = clock_mono_ms();

    pthread_mutex_lock(&b->lock);
    /* A take in progress answers its calls when it returns; wait for it. */
    while (b->busy)
        pthread_cond_wait(&b->idle, &b->lock);
    for (int i = 0; i < ACS_OP_COUNT; i++)
        if (b->op[i].queued > 0)
            drop_where(b, &b->op[i], now, of_client, client, &next);
    b->next_expiry = next;
    pthread_mutex_unlock(&b->lock);
}

/* ---- the budget thread ---- */

static int64_t budget_clock(void *arg)
{
    struct upstream_budget *b = arg;

    return b->clock != NULL ? b->clock(b->clock_arg) : clock_wall_ms();
}

/* The operation to take slots for now (in turns between operations), or -1. */
static int pick_op(struct upstream_budget *b, int64_t now)
{
    for (int i = 1; i <= ACS_OP_COUNT; i++) {
        int k = (b->last_op + i) % ACS_OP_COUNT;
        if (b->op[k].queued > 0 && b->op[k].retry_mono <= now) {
            b->last_op = k;
            return k;
        }
    }
    return -1;
}

/* Waits on cv (CLOCK_MONOTONIC, see budget_cond_init) until the monotonic ms until, or a
 * signal. The lock is held. */
static void cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *lock, int64_t until)
{
    struct timespec ts = {.tv_sec = (time_t)(until / 1000),
                          .tv_nsec = (long)(until % 1000) * 1000000L};

    (void)pthread_cond_timedwait(cv, lock, &ts);
}

static void wait_until(struct upstream_budget *b, int64_t now)
{
    int64_t until = now + IDLE_WAIT_MS;

    if (b->next_expiry < until)
        until = b->next_expiry;
    for (int i = 0; i < ACS_OP_COUNT; i++)
        if (b->op[i].queued > 0 && b->op[i].retry_mono < until)
            until = b->op[i].retry_mono;
    if (until <= now)
        return;
    cond_wait_until(&b->wake, &b->lock, until);
}

/* With the lock held: one take for operation k (the lock is dropped around the store). */
static void take_for(struct upstream_budget *b, int k)
{
    struct opq *o = &b->op[k];
    struct store_budget_take t = {.op = budget_op_name(k),
                                  .slots = o->rl.burst,
                                  .window_ms = o->rl.window_ms,
                                  .hold_ms = b->hold_ms,
                                  .want = (int64_t)o->queued,
                                  .ensure = !o->ensured,
                                  .clock = budget_clock,
                                  .clock_arg = b,
                                  .fake_clock = b->clock != NULL};
    int64_t t0, now;
    int rc;

    if (t.want > STORE_BUDGET_TAKE_MAX)
        t.want = STORE_BUDGET_TAKE_MAX;
    if (t.want > o->rl.burst)
        t.want = o->rl.burst;
    /* Before the take: the engine's freshness check then errs on the safe side. */
    t0 = clock_mono_ms();
    b->busy = 1;
    b->busy_since = t0;
    pthread_mutex_unlock(&b->lock);
    rc = store_acs_budget_take(b->store, &t);
    pthread_mutex_lock(&b->lock);
    b->busy = 0;
    pthread_cond_broadcast(&b->idle);
    now = clock_mono_ms();
    o->store_failing = rc != 0;
    if (rc != 0) {
        o->store_errors++;
        o->retry_mono = now + STORE_ERR_RETRY_MS;
        if (now - b->last_err_log >= ERR_LOG_EVERY_MS) {
            b->last_err_log = now;
            log_msg(LOGL_WARN, NULL,
                    "acs budget: the store could not take slots for %s (%s); calls wait, "
                    "and end with 503 at their deadline while it fails",
                    budget_op_name(k), err_name(rc));
        }
        return;
    }
    o->ensured = 1;
    o->used = t.in_use;
    o->used_at_mono = now;
    for (int64_t i = 0; i < t.got; i++) {
        struct ticket *tk = ticket_pop(o);
        if (tk == NULL)
            break; /* the reaper refused calls while the store was slow: slots left unused */
        if (tk->gen != o->short_gen)
            o->waits++;
        o->granted++;
        acs_client_gate_answer(tk->client, tk->call, ACS_GATE_GO, 0, t0);
        free(tk);
    }
    if (t.got < t.want) {
        int64_t d = t.next_free_ms - t.now_ms;
        int64_t next = b->next_expiry;
        o->short_gen++;
        o->next_free_mono = now + (d < MIN_RETRY_MS ? MIN_RETRY_MS : d);
        o->retry_mono = o->next_free_mono;
        if (o->queued > 0) {
            drop_where(b, o, now, turn_too_late, NULL, &next);
            b->next_expiry = next;
        }
    } else {
        o->next_free_mono = 0;
        o->retry_mono = 0;
    }
}

static void *budget_main(void *arg)
{
    struct upstream_budget *b = arg;

    pthread_mutex_lock(&b->lock);
    while (!b->stopping) {
        int64_t now = clock_mono_ms();
        int k;

        if (now >= b->next_expiry - EXPIRE_BATCH_MS)
            expire_all(b, now);
        k = pick_op(b, now);
        if (k < 0)
            wait_until(b, now);
        else
            take_for(b, k);
    }
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

/* Refuses the calls whose last useful moment comes while they wait, whatever the budget
 * thread is doing (it may be in the store for seconds). Never touches the store. */
static void *reaper_main(void *arg)
{
    struct upstream_budget *b = arg;

    pthread_mutex_lock(&b->lock);
    while (!b->stopping) {
        int64_t now = clock_mono_ms();
        int64_t until = now + IDLE_WAIT_MS;

        if (now >= b->next_expiry - EXPIRE_BATCH_MS)
            expire_all(b, now);
        if (b->next_expiry - EXPIRE_BATCH_MS < until)
            until = b->next_expiry - EXPIRE_BATCH_MS;
        if (until > now)
            cond_wait_until(&b->reap, &b->lock, until);
    }
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

/* ---- lifecycle ---- */

/* A condition variable whose timed waits run on CLOCK_MONOTONIC: a wall clock step (NTP, an
 * operator) neither stretches nor cuts a wait. 0 or an errno value. */
static int budget_cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    int rc = pthread_condattr_init(&ca);

    if (rc != 0)
        return rc;
    rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
    return rc;
}

static void budget_stop_threads(struct upstream_budget *b)
{
    pthread_mutex_lock(&b->lock);
    b->stopping = 1;
    pthread_cond_broadcast(&b->wake);
    pthread_cond_broadcast(&b->reap);
    pthread_mutex_unlock(&b->lock);
    if (b->thread_ok)
        pthread_join(b->thread, NULL);
    if (b->reaper_ok)
        pthread_join(b->reaper, NULL);
    b->thread_ok = b->reaper_ok = 0;
}

static void budget_destroy(struct upstream_budget *b)
{
    pthread_cond_destroy(&b->reap);
    pthread_cond_destroy(&b->idle);
    pthread_cond_destroy(&b->wake);
    pthread_mutex_destroy(&b->lock);
    for (int i = 0; i < ACS_OP_COUNT; i++)
        OPENSSL_cleanse(b->op[i].key, sizeof b->op[i].key);
    free(b);
}

static size_t queue_cap(const struct ratelimit *rl, long deadline_ms, int64_t hold_ms)
{
    int64_t rounds = deadline_ms / budget_add(rl->window_ms, hold_ms) + 1;
    int64_t cap;

    if (__builtin_mul_overflow(rl->burst, rounds, &cap) || cap > QUEUE_MAX)
        cap = QUEUE_MAX;
    return cap < QUEUE_MIN ? QUEUE_MIN : (size_t)cap;
}

int upstream_budget_new(const struct upstream_budget_opts *o, struct upstream_budget **out)
{
    struct upstream_budget *b;
    size_t biggest = 0;

    if (o == NULL || o->store == NULL || out == NULL || o->deadline_ms < 0 || o->hold_ms < 0 ||
        o->min_attempt_ms < 0)
        return TV_ERR_INVALID;
    b = calloc(1, sizeof *b);
    if (b == NULL)
        return TV_ERR_NOMEM;
    b->store = o->store;
    b->cfg = o->cfg;
    b->hold_ms = o->hold_ms > 0 ? o->hold_ms : BUDGET_HOLD_MS;
    b->clock = o->clock;
    b->clock_arg = o->clock_arg;
    b->min_attempt_ms = o->min_attempt_ms > 0 ? o->min_attempt_ms : MIN_ATTEMPT_DEFAULT_MS;
    b->next_expiry = INT64_MAX;
    b->last_op = ACS_OP_COUNT - 1;
    if (RAND_bytes(b->op[0].key, (int)sizeof b->op[0].key) != 1) {
        free(b);
        return TV_ERR_INTERNAL;
    }
    for (int i = 0; i < ACS_OP_COUNT; i++) {
        memcpy(b->op[i].key, b->op[0].key, sizeof b->op[i].key);
        b->op[i].rl = o->cfg.op[i];
        if (o->cfg.off)
            b->op[i].rl.off = 1;
        if (!b->op[i].rl.off) {
            size_t cap =
                queue_cap(&b->op[i].rl, o->deadline_ms > 0 ? o->deadline_ms : 30000, b->hold_ms);
            biggest = cap > biggest ? cap : biggest;
        }
    }
    b->queue_max = o->queue_max > 0 ? o->queue_max : (biggest > 0 ? biggest : QUEUE_MIN);
    b->caller_max =
        o->caller_max > 0 ? o->caller_max : (b->queue_max / 4 > 0 ? b->queue_max / 4 : 1);
    b->gate = (struct acs_gate){.ask = gate_ask, .cancel = gate_cancel, .ctx = b};
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->idle, NULL);
    if (budget_cond_init(&b->wake) != 0) {
        pthread_cond_destroy(&b->idle);
        pthread_mutex_destroy(&b->lock);
        free(b);
        return TV_ERR_INTERNAL;
    }
    if (budget_cond_init(&b->reap) != 0) {
        pthread_cond_destroy(&b->wake);
        pthread_cond_destroy(&b->idle);
        pthread_mutex_destroy(&b->lock);
        free(b);
        return TV_ERR_INTERNAL;
    }
    if (!o->cfg.off) {
        b->thread_ok = pthread_create(&b->thread, NULL, budget_main, b) == 0;
        b->reaper_ok = b->thread_ok && pthread_create(&b->reaper, NULL, reaper_main, b) == 0;
        if (!b->reaper_ok) {
            budget_stop_threads(b);
            budget_destroy(b);
            return TV_ERR_INTERNAL;
        }
    }
    *out = b;
    return 0;
}

const struct acs_gate *upstream_budget_gate(struct upstream_budget *b)
{
    return b != NULL && !b->cfg.off ? &b->gate : NULL;
}

void upstream_budget_free(struct upstream_budget *b)
{
    if (b == NULL)
        return;
    budget_stop_threads(b);
    /* The clients were freed first and took their calls back: only empty queues are left. */
    for (int i = 0; i < ACS_OP_COUNT; i++) {
        struct ticket *t;
        while ((t = ticket_pop(&b->op[i])) != NULL)
            free(t);
    }
    budget_destroy(b);
}

void upstream_budget_stats_get(struct upstream_budget *b, int op, struct upstream_budget_stats *out)
{
    struct opq *o;
    int64_t now = clock_mono_ms();

    memset(out, 0, sizeof *out);
    if (b == NULL || op < 0 || op >= ACS_OP_COUNT)
        return;
    o = &b->op[op];
    pthread_mutex_lock(&b->lock);
    out->limit = o->rl.off ? 0 : o->rl.burst;
    /* As last seen: every slot counted then has freed once a window and the hold went by. */
    out->used = now - o->used_at_mono <= budget_add(o->rl.window_ms, b->hold_ms) ? o->used : 0;
    out->queued = o->queued;
    out->granted = o->granted;
    out->waits = o->waits;
    out->refusals = o->refusals;
    out->store_errors = o->store_errors;
    pthread_mutex_unlock(&b->lock);
}

int upstream_budget_metrics_write(struct upstream_budget *b, struct buf *out)
{
    static const struct {
        const char *name, *type, *help;
    } defs[] = {
        {"tokenvend_acs_budget_limit", "gauge",
         "Upstream ACS calls allowed per window (N of acs_budget; 0: no budget)."},
        {"tokenvend_acs_budget_used", "gauge",
         "Budget slots used within the last window by every process on the store, as last seen."},
        {"tokenvend_acs_budget_queue", "gauge", "ACS calls waiting for a budget slot."},
        {"tokenvend_acs_budget_granted_total", "counter", "Budget slots taken by this process."},
        {"tokenvend_acs_budget_waits_total", "counter",
         "ACS calls that waited because no budget slot was free."},
        {"tokenvend_acs_budget_refusals_total", "counter",
         "ACS calls refused with 503 and Retry-After: no budget slot within their deadline."},
        {"tokenvend_acs_budget_store_errors_total", "counter",
         "Budget slot takes the store failed."},
    };
    struct upstream_budget_stats st[ACS_OP_COUNT];
    int rc = 0;

    for (int k = 0; k < ACS_OP_COUNT; k++)
        upstream_budget_stats_get(b, k, &st[k]);
    for (size_t i = 0; rc == 0 && i < sizeof defs / sizeof defs[0]; i++) {
        rc = buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", defs[i].name, defs[i].help,
                        defs[i].name, defs[i].type);
        for (int k = 0; rc == 0 && k < ACS_OP_COUNT; k++) {
            const struct upstream_budget_stats *s = &st[k];
            unsigned long long v[] = {(unsigned long long)s->limit,
                                      (unsigned long long)s->used,
                                      (unsigned long long)s->queued,
                                      s->granted,
                                      s->waits,
                                      s->refusals,
                                      s->store_errors};
            rc = buf_printf(out, "%s{op=\"%s\"} %llu\n", defs[i].name, budget_op_name(k), v[i]);
        }
    }
    return rc;
}
