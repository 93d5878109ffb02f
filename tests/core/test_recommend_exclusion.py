"""``recommend_indices`` gathers the seen rows straight from the CSR arrays: the same rows as
scipy's fancy indexing, for any user order, repeats, empty rows and unsorted input."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recforge.models.base import _csr_rows


def test_csr_rows_equals_scipy_row_indexing():
    rng = np.random.default_rng(0)
    m = sp.random(40, 30, density=0.2, format="csr", random_state=1)
    m[5] = 0  # an empty row
    m.eliminate_zeros()
    m.indices[: m.indptr[1]] = m.indices[: m.indptr[1]][::-1]  # unsorted first row
    m.has_sorted_indices = False
    for rows in (np.arange(40), rng.integers(0, 40, 25), np.array([5, 5, 0]), np.array([], np.int64)):
        ptr, idx = _csr_rows(m, rows)
        want = m[rows].tocsr()
        want.sort_indices()
        np.testing.assert_array_equal(ptr, want.indptr)
        np.testing.assert_array_equal(idx, want.indices)
