"""DICOM services beyond Orthanc's own: orders (scheduled procedures) with
the Modality Worklist answered from them and the MPPS SCP that reports on
them (orders, orderfields, mwl, mpps, order_routes). Other DICOM nodes are
plugin/nodes."""
