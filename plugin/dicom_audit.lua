-- Audit of DICOM queries by other nodes (loaded through "LuaScripts" by plugin/launcher.py).
-- Orthanc 1.10.1 calls IncomingFindRequestFilter for every C-FIND it answers (patient, study,
-- series, instance level; not the modality worklist); it has no such hook for C-MOVE or C-GET.
-- The plugin's internal route records the entry (memory only); internal calls skip the HTTP
-- filter, which refuses /pacs-internal/ to every HTTP client. The query goes on unchanged.
-- Should recording fail (an Orthanc without the plugin), the C-FIND is still answered and
-- Orthanc's log says so: event=dicom_audit_failed.

function IncomingFindRequestFilter(query, origin)
  local ok, problem = pcall(RestApiPost, '/pacs-internal/dicom-access',
                            DumpJson({ service = 'C-FIND', origin = origin, query = query }, true))
  if not ok then
    print('event=dicom_audit_failed service=C-FIND calling_aet=' .. tostring(origin['RemoteAet'])
          .. ' error=' .. tostring(problem))
  end
  return query
end
