// FarArena is header-only; this file keeps the library's source list stable.
#include "kvapp/far_arena.h"
