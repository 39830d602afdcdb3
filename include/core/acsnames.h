/* The vocabulary of the ACS identity REST API, written once: the api-versions, the token scopes
 * and the operations. Each is an X-macro table: TABLE(X, SEP) expands X(ID, "name") for every
 * entry, oldest or first to last, with SEP between two entries. Enums, name tables, parsers and
 * the lists in help texts and error messages are all derived from these, in the service (config,
 * ACS client, CLI) and in acs-emulator alike, so adding an entry here is the whole change.
 * Header only: macros and constants. */
#ifndef TV_CORE_ACSNAMES_H
#define TV_CORE_ACSNAMES_H

/* api-versions the identity API accepts that this project speaks, oldest first (so a feature
 * can be gated with >= on an enum derived from it). */
#define ACS_API_VERSIONS(X, SEP)                                                                   \
    X(2021_03_07, "2021-03-07")                                                                    \
    SEP X(2022_06_01, "2022-06-01") SEP X(2022_10_01, "2022-10-01")                                \
        SEP X(2023_10_01, "2023-10-01") SEP X(2025_03_02_PREVIEW, "2025-03-02-preview")            \
            SEP X(2025_06_30, "2025-06-30")

/* The one api-version whose POST /identities takes a customId (the 2025-06-30 GA API does not
 * define it): same customId, same identity. */
#define ACS_API_VERSION_CUSTOM_ID "2025-03-02-preview"

/* The api-version used when none is configured (one of the above). */
#define ACS_API_VERSION_DEFAULT "2023-10-01"

/* Token scopes ("chat", "voip" and the join variants). */
#define ACS_SCOPES(X, SEP)                                                                         \
    X(CHAT, "chat")                                                                                \
    SEP X(VOIP, "voip") SEP X(CHAT_JOIN, "chat.join") SEP X(CHAT_JOIN_LIMITED,                     \
                                                            "chat.join.limited") SEP               \
    X(VOIP_JOIN, "voip.join")

/* Operations on identities, by the names logs, metrics and the emulator's faults use. */
#define ACS_OPS(X, SEP)                                                                            \
    X(CREATE, "create")                                                                            \
    SEP X(ISSUE, "issue") SEP X(REVOKE, "revoke") SEP X(DELETE, "delete") SEP X(TEAMS_EXCHANGE,    \
                                                                                "teams_exchange")

/* Helpers for deriving from the tables. */
#define ACS_NAME_OF(id, name) name
#define ACS_NAME_ITEM(id, name) name,
#define ACS_COUNT_ONE(id, name) +1

/* String literals joining every name with ", " ("chat, voip, ..."): for help texts and
 * messages, and concatenable with other literals. */
#define ACS_API_VERSION_LIST ACS_API_VERSIONS(ACS_NAME_OF, ", ")
#define ACS_SCOPE_LIST ACS_SCOPES(ACS_NAME_OF, ", ")
#define ACS_OP_LIST ACS_OPS(ACS_NAME_OF, ", ")

/* How many entries each table has. */
enum acs_name_counts {
    ACS_API_VERSION_COUNT = 0 ACS_API_VERSIONS(ACS_COUNT_ONE, ),
    ACS_SCOPE_COUNT = 0 ACS_SCOPES(ACS_COUNT_ONE, ),
    ACS_OP_COUNT = 0 ACS_OPS(ACS_COUNT_ONE, ),
};

#endif
