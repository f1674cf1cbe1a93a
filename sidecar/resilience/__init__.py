"""Resilience policy state shared by the resilience filters: breakers, limiters, budgets, buckets."""
