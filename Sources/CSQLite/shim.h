#ifndef TROUPE_CSQLITE_SHIM_H
#define TROUPE_CSQLITE_SHIM_H

#include <sqlite3.h>

/// SQLITE_TRANSIENT is a macro casting -1 to a function pointer, which Swift cannot import: SQLite copies the
/// bytes before the bind call returns.
static inline int troupe_sqlite3_bind_text_transient(sqlite3_stmt *statement, int index, const char *text, int length) {
    return sqlite3_bind_text(statement, index, text, length, SQLITE_TRANSIENT);
}

static inline int troupe_sqlite3_bind_blob_transient(sqlite3_stmt *statement, int index, const void *bytes, int length) {
    return sqlite3_bind_blob(statement, index, bytes, length, SQLITE_TRANSIENT);
}

/// Turns off SQLite's memory statistics, which take a process-wide mutex on every allocation and free (Troupe reads
/// none of them). `sqlite3_config` is variadic, which Swift cannot call. It works only before SQLite initializes;
/// after that it returns SQLITE_MISUSE and changes nothing, which is harmless.
static inline int troupe_sqlite3_disable_memory_statistics(void) {
    return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

#endif
