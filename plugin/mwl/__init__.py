"""The Modality Worklist (DICOM C-FIND, PS3.4 K): a modality's query matched
against the open orders and answered as DICOM (service.py)."""
