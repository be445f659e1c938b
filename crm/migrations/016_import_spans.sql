-- A row of import_records may stand for a run of created records: lines line .. line + span - 1
-- of the file became records record_id .. record_id + span - 1 (a million-row import writes a
-- few rows here instead of a million).
ALTER TABLE import_records ADD COLUMN span INTEGER DEFAULT 1;
