"""`parafka.sim`, kept for users: the simulator lives in `parafka.testing.sim`, and this
package re-exports exactly its public names."""

from parafka.testing import sim as _home
from parafka.testing.sim import *  # noqa: F403  (the names are _home.__all__)

__all__ = list(_home.__all__)
