#include "common/err.h"

#include <string.h>

const char *tvmw_strerror(int code)
{
    switch (code) {
    case 0:
        return "ok";
    case TVMW_ENOTLEADER:
        return "not the leader";
    case TVMW_EMALFORMED:
        return "malformed input";
    case TVMW_ETOOBIG:
        return "input too big";
    case TVMW_ECORRUPT:
        return "corrupt data";
    case TVMW_ENOTFOUND:
        return "not found";
    case TVMW_EUNKNOWN:
        return "outcome unknown";
    case TVMW_ENOTAPPLIED:
        return "command was not committed";
    case TVMW_EBUSY:
        return "another operation is in progress";
    case TVMW_ESHUTDOWN:
        return "node is shutting down";
    case TVMW_ENOLEADER:
        return "no leader known";
    case TVMW_ESTORE:
        return "state store failure";
    case TVMW_ERAFT:
        return "raft refused the request";
    case TVMW_ECONFIG:
        return "invalid configuration";
    case TVMW_EIO:
        return "i/o failure";
    default:
        break;
    }
    if (code < 0 && code > -1000) {
        return strerror(-code);
    }
    return "unknown error";
}
