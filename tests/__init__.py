"""Tests of attention_from_scratch, one file per module."""
