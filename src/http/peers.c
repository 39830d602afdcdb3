/* The per-address connection cap of a listener: open connections counted per client, where a
 * client is an IPv4 address or an IPv6 /64 (one subscriber commonly holds a whole /64, so
 * counting single IPv6 addresses would let one source take every slot), and an IPv4-mapped
 * IPv6 address counts as its IPv4 address. libmicrohttpd's own per-IP cap compares exact
 * addresses, so the service sets it to 0 and counts here. The counts live in a balanced tree
 * (POSIX tsearch), so a client choosing its addresses cannot make a lookup slow; the tree holds
 * one node per client with a connection open, at most the listener's connection limit.
 * Thread-safe (one mutex per listener). */
#include <netinet/in.h>
#include <pthread.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "http_int.h"

struct http_peers {
    pthread_mutex_t mu;
    unsigned limit;
    void *root; /* tsearch tree of struct http_peer */
};

struct http_peer {
    struct http_peer_key key;
    unsigned n; /* open connections; the node goes when it reaches 0 */
};

int http_peer_key_of(const struct sockaddr *addr, struct http_peer_key *k)
{
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    const struct sockaddr_in *a4;
    const struct sockaddr_in6 *a6;

    memset(k, 0, sizeof(*k));
    if (addr == NULL)
        return 0;
    if (addr->sa_family == AF_INET) {
        a4 = (const struct sockaddr_in *)(const void *)addr;
        k->family = AF_INET;
        memcpy(k->bytes, &a4->sin_addr, 4);
        return 1;
    }
    if (addr->sa_family != AF_INET6)
        return 0;
    a6 = (const struct sockaddr_in6 *)(const void *)addr;
    if (memcmp(a6->sin6_addr.s6_addr, v4mapped, sizeof(v4mapped)) == 0) {
        /* Counting the mapped form by its /64 would put every IPv4 client in one bucket. */
        k->family = AF_INET;
        memcpy(k->bytes, a6->sin6_addr.s6_addr + 12, 4);
        return 1;
    }
    k->family = AF_INET6;
    memcpy(k->bytes, a6->sin6_addr.s6_addr, 8);
    return 1;
}

static int http_peer_cmp(const void *a, const void *b)
{
    return memcmp(&((const struct http_peer *)a)->key, &((const struct http_peer *)b)->key,
                  sizeof(struct http_peer_key));
}

int http_peers_new(struct http_listener *l, unsigned limit)
{
    struct http_peers *p = calloc(1, sizeof(*p));

    if (!p)
        return TV_ERR_NOMEM;
    pthread_mutex_init(&p->mu, NULL);
    p->limit = limit;
    l->peers = p;
    return 0;
}

void http_peers_free(struct http_listener *l)
{
    struct http_peers *p = l->peers;

    if (!p)
        return;
    tdestroy(p->root, free); /* empty once every connection closed; frees strays otherwise */
    pthread_mutex_destroy(&p->mu);
    free(p);
    l->peers = NULL;
}

enum MHD_Result http_peers_admit(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    struct http_listener *l = cls;
    struct http_peers *p = l->peers;
    struct http_peer want = {.n = 0};
    void *found;
    enum MHD_Result ok = MHD_YES;

    (void)addrlen;
    if (!p || !http_peer_key_of(addr, &want.key))
        return MHD_YES;
    pthread_mutex_lock(&p->mu);
    found = tfind(&want, &p->root, http_peer_cmp);
    if (found && (*(struct http_peer **)found)->n >= p->limit)
        ok = MHD_NO;
    pthread_mutex_unlock(&p->mu);
    return ok;
}

int http_peers_add(struct http_listener *l, const struct http_peer_key *k)
{
    struct http_peers *p = l->peers;
    struct http_peer *node = malloc(sizeof(*node));
    void *slot;
    int rc = -1;

    if (!node)
        return -1;
    node->key = *k;
    node->n = 0;
    pthread_mutex_lock(&p->mu);
    slot = tsearch(node, &p->root, http_peer_cmp);
    if (!slot)
        goto unlock; /* tsearch could not allocate its own node */
    if (*(struct http_peer **)slot != node) {
        free(node); /* the client has a node already */
        node = *(struct http_peer **)slot;
    }
    node->n++;
    rc = node->n > p->limit ? 1 : 0;
    node = NULL;
unlock:
    pthread_mutex_unlock(&p->mu);
    free(node);
    return rc;
}

void http_peers_del(struct http_listener *l, const struct http_peer_key *k)
{
    struct http_peers *p = l->peers;
    struct http_peer want = {.key = *k, .n = 0}, *node = NULL;
    void *found;

    pthread_mutex_lock(&p->mu);
    found = tfind(&want, &p->root, http_peer_cmp);
    if (found) {
        node = *(struct http_peer **)found;
        if (--node->n == 0)
            tdelete(&want, &p->root, http_peer_cmp);
        else
            node = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    free(node); /* the node left the tree, or NULL */
}
