/* A check that secrets are wiped before their memory goes back to the allocator: while a test
 * watches, every free() of the process looks for the secret in the block before releasing it,
 * so a copy freed unwiped is counted whichever library frees it (libmicrohttpd, json-c, libcurl)
 * and however the fix is built.
 *
 * In a plain build the including binary defines free() itself (the dynamic linker binds every
 * library's free() to it) and hands the block on to glibc; under AddressSanitizer or
 * ThreadSanitizer, whose runtimes own free(), the check is their free hook
 * (__sanitizer_install_malloc_and_free_hooks). The sanitizer runtimes also run it for the old
 * block of a realloc that moved (glibc's realloc does not call free()).
 *
 * Include from exactly one file of a test binary (it defines free() there), and call
 * freecheck_install() at the start of main. */
#ifndef TV_TESTS_FREECHECK_H
#define TV_TESTS_FREECHECK_H

#include <malloc.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define FREECHECK_BY_HOOK 1
#else
#define FREECHECK_BY_HOOK 0
#endif

static const char *_Atomic freecheck_secret; /* NULL: not watching */
static atomic_long freecheck_unwiped;        /* frees of a block that still held the secret */

/* Counts block p of n bytes when it still holds the watched secret. */
static void freecheck_look(const void *p, size_t n)
{
    const char *s = atomic_load(&freecheck_secret);
    size_t len = s != NULL ? strlen(s) : 0;
    if (p != NULL && s != NULL && n >= len && memmem(p, n, s, len) != NULL)
        atomic_fetch_add(&freecheck_unwiped, 1);
}

#if FREECHECK_BY_HOOK
/* The sanitizer runtimes' allocator interface (compiler-rt's sanitizer/allocator_interface.h,
 * which gcc does not install). The free hook runs before the block is released. */
int __sanitizer_install_malloc_and_free_hooks(void (*on_malloc)(const volatile void *, size_t),
                                              void (*on_free)(const volatile void *));
size_t __sanitizer_get_allocated_size(const volatile void *p);

static void freecheck_hook_malloc(const volatile void *p, size_t n)
{
    (void)p;
    (void)n;
}

static void freecheck_hook_free(const volatile void *p)
{
    /* Through uintptr_t: the block is plain heap memory, read once before it is released. */
    if (p != NULL && atomic_load(&freecheck_secret) != NULL)
        freecheck_look((const void *)(uintptr_t)p, __sanitizer_get_allocated_size(p));
}

static void freecheck_install(void)
{
    __sanitizer_install_malloc_and_free_hooks(freecheck_hook_malloc, freecheck_hook_free);
}
#else
/* glibc's own free, exported for exactly this kind of wrapper. */
extern void __libc_free(void *p);

void free(void *p)
{
    if (p != NULL && atomic_load(&freecheck_secret) != NULL)
        freecheck_look(p, malloc_usable_size(p));
    __libc_free(p);
}

static void freecheck_install(void)
{
}
#endif

/* Starts counting frees that still hold secret (a string the test keeps alive). */
static inline void freecheck_begin(const char *secret)
{
    atomic_store(&freecheck_unwiped, 0);
    atomic_store(&freecheck_secret, secret);
}

/* Stops counting; the number of unwiped frees seen since freecheck_begin. */
static inline long freecheck_end(void)
{
    atomic_store(&freecheck_secret, NULL);
    return atomic_load(&freecheck_unwiped);
}

#endif
