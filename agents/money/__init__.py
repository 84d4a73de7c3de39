"""Money: the shipped price table and the budget ledger (reserve worst case, settle real usage).

Usable alone for budget-capped calls. Persistence is pluggable: the ledger keeps its totals in
memory unless given a `LedgerBackend` (selfplay's run store is one).
"""
