"""Modality Performed Procedure Step (DICOM N-CREATE/N-SET, PS3.4 F.7): the SCP
that hears how a procedure went and moves its order (service.py)."""
