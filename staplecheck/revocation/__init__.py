"""Revocation beyond the staple: sources (OCSP responders, CRLs), their judges and stores;
pure except the fetchers."""
