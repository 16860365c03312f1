#ifndef TROUPE_CPOSTGRES_SHIM_H
#define TROUPE_CPOSTGRES_SHIM_H

// libpq from Debian's libpq-dev, which installs its headers under /usr/include/postgresql.
#include <postgresql/libpq-fe.h>

#endif
