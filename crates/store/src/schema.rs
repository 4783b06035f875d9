//! Versioned migrations. Both databases run the same statements (plain SQL types: TEXT, BIGINT,
//! DOUBLE PRECISION),
//! plus per-dialect extras (PostgreSQL's append-only trigger on the audit table, NFR-CMP-001).
//! Applied versions are recorded in `schema_migrations`; each version runs in one transaction.

/// (version, statements) shared by every dialect.
pub const MIGRATIONS: &[(i64, &[&str])] = &[
    (
        1,
        &[
            "CREATE TABLE IF NOT EXISTS raw_inbox (
            ingest_id TEXT PRIMARY KEY,
            origin TEXT NOT NULL,
            received_at TEXT NOT NULL,
            payload TEXT NOT NULL,
            status TEXT NOT NULL,
            error TEXT,
            updated_at TEXT NOT NULL
        )",
            "CREATE INDEX IF NOT EXISTS raw_inbox_status ON raw_inbox (status, received_at)",
            "CREATE TABLE IF NOT EXISTS alerts (
            tenant_id TEXT NOT NULL,
            alert_id TEXT NOT NULL,
            source TEXT NOT NULL,
            alert_time TEXT NOT NULL,
            severity TEXT NOT NULL,
            title TEXT NOT NULL,
            body TEXT NOT NULL,
            inserted_at TEXT NOT NULL,
            PRIMARY KEY (tenant_id, alert_id)
        )",
            "CREATE INDEX IF NOT EXISTS alerts_time ON alerts (tenant_id, alert_time)",
            "CREATE TABLE IF NOT EXISTS investigations (
            investigation_id TEXT PRIMARY KEY,
            tenant_id TEXT NOT NULL,
            alert_id TEXT NOT NULL,
            state TEXT NOT NULL,
            version BIGINT NOT NULL,
            incident_id TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            graph_state TEXT NOT NULL,
            UNIQUE (tenant_id, alert_id)
        )",
            "CREATE INDEX IF NOT EXISTS investigations_state ON investigations (state, updated_at)",
            "CREATE INDEX IF NOT EXISTS investigations_updated ON investigations (tenant_id, updated_at)",
            "CREATE TABLE IF NOT EXISTS investigation_versions (
            investigation_id TEXT NOT NULL,
            version BIGINT NOT NULL,
            state TEXT NOT NULL,
            recorded_at TEXT NOT NULL,
            graph_state TEXT NOT NULL,
            PRIMARY KEY (investigation_id, version)
        )",
            "CREATE TABLE IF NOT EXISTS incidents (
            incident_id TEXT PRIMARY KEY,
            tenant_id TEXT NOT NULL,
            first_seen TEXT NOT NULL,
            last_seen TEXT NOT NULL,
            merged_into TEXT,
            body TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )",
            "CREATE INDEX IF NOT EXISTS incidents_window ON incidents (tenant_id, last_seen)",
            "CREATE TABLE IF NOT EXISTS dead_letters (
            id TEXT PRIMARY KEY,
            topic TEXT NOT NULL,
            origin TEXT NOT NULL,
            error TEXT NOT NULL,
            original TEXT NOT NULL,
            recorded_at TEXT NOT NULL
        )",
            "CREATE TABLE IF NOT EXISTS audit_records (
            tenant_id TEXT NOT NULL,
            sequence_number BIGINT NOT NULL,
            audit_id TEXT NOT NULL UNIQUE,
            previous_hash TEXT NOT NULL,
            event_time TEXT NOT NULL,
            ingested_at TEXT NOT NULL,
            event_type TEXT NOT NULL,
            event_category TEXT NOT NULL,
            severity TEXT NOT NULL,
            actor_type TEXT NOT NULL,
            actor_id TEXT NOT NULL,
            actor_permissions TEXT NOT NULL,
            investigation_id TEXT,
            alert_id TEXT,
            entity_ids TEXT NOT NULL,
            context TEXT NOT NULL,
            decision TEXT NOT NULL,
            outcome TEXT NOT NULL,
            record_hash TEXT NOT NULL,
            record_version TEXT NOT NULL,
            PRIMARY KEY (tenant_id, sequence_number)
        )",
        ],
    ),
    (
        2,
        &[
            // A tenant assigned by the receiving connector (`[sources.*] tenant`), overriding the source's.
            "ALTER TABLE raw_inbox ADD COLUMN tenant_id TEXT",
            // One resumable position per connector (FR-ING-003): written after each page it published.
            "CREATE TABLE IF NOT EXISTS connector_checkpoints (
                source_name TEXT PRIMARY KEY,
                checkpoint TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )",
        ],
    ),
    (
        3,
        &[
            // One row per model call through the gateway: spend limits, tenant quotas and
            // `aluskort llm usage` read it. Cost in micro-dollars keeps sums exact in both databases.
            "CREATE TABLE IF NOT EXISTS llm_calls (
                call_id TEXT PRIMARY KEY,
                called_at TEXT NOT NULL,
                tenant_id TEXT NOT NULL,
                task TEXT NOT NULL,
                tier TEXT NOT NULL,
                provider TEXT NOT NULL,
                model TEXT NOT NULL,
                outcome TEXT NOT NULL,
                input_tokens BIGINT NOT NULL,
                output_tokens BIGINT NOT NULL,
                cache_read_tokens BIGINT NOT NULL,
                cache_write_tokens BIGINT NOT NULL,
                cost_micros BIGINT NOT NULL,
                latency_ms BIGINT NOT NULL
            )",
            "CREATE INDEX IF NOT EXISTS llm_calls_time ON llm_calls (called_at)",
            "CREATE INDEX IF NOT EXISTS llm_calls_tenant_time ON llm_calls (tenant_id, called_at)",
        ],
    ),
    (
        4,
        &[
            // Threat-intelligence indicators for exact-match enrichment (FR-ENR-004). `tenant_id` ''
            // is a feed for every tenant. `indicator` is `{type}:{canonical value}`.
            "CREATE TABLE IF NOT EXISTS threat_intel_iocs (
                tenant_id TEXT NOT NULL,
                indicator TEXT NOT NULL,
                confidence BIGINT NOT NULL,
                source TEXT NOT NULL,
                description TEXT NOT NULL,
                expires_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                PRIMARY KEY (tenant_id, indicator)
            )",
        ],
    ),
    (
        5,
        &[
            // Entity keys of every incident's members: grouping reads the incidents sharing an
            // alert's keys instead of every incident in the window. Rows of existing incidents are
            // written after this version is applied (`backfill_incident_keys`).
            "CREATE TABLE IF NOT EXISTS incident_keys (
                tenant_id TEXT NOT NULL,
                entity_key TEXT NOT NULL,
                incident_id TEXT NOT NULL,
                PRIMARY KEY (tenant_id, entity_key, incident_id)
            )",
        ],
    ),
    (
        6,
        &[
            // Analyst-approved false-positive patterns (FR-RAG-005, NFR-CMP-003). `tenant_id` NULL
            // applies to every tenant; `entity_patterns` and `approved_by` are JSON lists.
            "CREATE TABLE IF NOT EXISTS fp_patterns (
                pattern_id TEXT PRIMARY KEY,
                tenant_id TEXT,
                name TEXT NOT NULL,
                alert_name_regex TEXT,
                entity_patterns TEXT NOT NULL,
                confidence_threshold DOUBLE PRECISION NOT NULL,
                status TEXT NOT NULL,
                approved_by TEXT NOT NULL,
                approval_date TEXT,
                expires_at TEXT,
                created_at TEXT NOT NULL,
                reason TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )",
            "CREATE INDEX IF NOT EXISTS fp_patterns_status ON fp_patterns (status, tenant_id)",
            // UEBA risk per account (FR-ENR-005); `user_key` is lower-cased.
            "CREATE TABLE IF NOT EXISTS user_risk (
                tenant_id TEXT NOT NULL,
                user_key TEXT NOT NULL,
                priority DOUBLE PRECISION NOT NULL,
                observed_at TEXT NOT NULL,
                detail TEXT NOT NULL,
                imported_at TEXT NOT NULL,
                PRIMARY KEY (tenant_id, user_key)
            )",
            // CTEM exposure findings (FR-ENR-006), correlated by (asset, zone); `asset_key` is the
            // lower-cased `asset_id` they are looked up by.
            "CREATE TABLE IF NOT EXISTS ctem_exposures (
                tenant_id TEXT NOT NULL,
                exposure_id TEXT NOT NULL,
                asset_id TEXT NOT NULL,
                asset_key TEXT NOT NULL,
                asset_zone TEXT NOT NULL,
                status TEXT NOT NULL,
                ctem_score DOUBLE PRECISION NOT NULL,
                title TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                imported_at TEXT NOT NULL,
                PRIMARY KEY (tenant_id, exposure_id)
            )",
            "CREATE INDEX IF NOT EXISTS ctem_exposures_asset ON ctem_exposures (tenant_id, asset_key, asset_zone)",
        ],
    ),
    (
        7,
        &[
            // Approval gates (FR-RSP-002/003): the body is the whole `Approval` as JSON; the
            // columns are what lists and the deadline sweep filter on.
            "CREATE TABLE IF NOT EXISTS approvals (
                approval_id TEXT PRIMARY KEY,
                tenant_id TEXT NOT NULL,
                investigation_id TEXT NOT NULL,
                status TEXT NOT NULL,
                deadline TEXT NOT NULL,
                version BIGINT NOT NULL,
                body TEXT NOT NULL,
                requested_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )",
            "CREATE INDEX IF NOT EXISTS approvals_status ON approvals (status, deadline)",
            "CREATE INDEX IF NOT EXISTS approvals_investigation ON approvals (investigation_id)",
            // At most one pending approval per investigation: a second would release the same
            // steps again under other execution keys.
            "CREATE UNIQUE INDEX IF NOT EXISTS approvals_one_pending ON approvals (investigation_id) WHERE status = 'pending'",
            // Action executions, one row per idempotency key (FR-RSP-004): a key is never
            // inserted twice, and a claim is fenced by `attempts`.
            "CREATE TABLE IF NOT EXISTS action_executions (
                execution_key TEXT PRIMARY KEY,
                tenant_id TEXT NOT NULL,
                investigation_id TEXT NOT NULL,
                approval_id TEXT,
                status TEXT NOT NULL,
                attempts BIGINT NOT NULL,
                lease_until TEXT,
                body TEXT NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )",
            "CREATE INDEX IF NOT EXISTS action_executions_status ON action_executions (status, lease_until)",
            "CREATE INDEX IF NOT EXISTS action_executions_investigation ON action_executions (investigation_id)",
            // Analyst feedback on investigations (FR-CSM-004).
            "CREATE TABLE IF NOT EXISTS feedback (
                feedback_id TEXT PRIMARY KEY,
                tenant_id TEXT NOT NULL,
                investigation_id TEXT NOT NULL,
                actor TEXT NOT NULL,
                correct BIGINT NOT NULL,
                rating BIGINT NOT NULL,
                comment TEXT NOT NULL,
                body TEXT NOT NULL,
                created_at TEXT NOT NULL
            )",
            "CREATE INDEX IF NOT EXISTS feedback_investigation ON feedback (investigation_id)",
            "CREATE INDEX IF NOT EXISTS feedback_tenant ON feedback (tenant_id, created_at)",
        ],
    ),
    (
        8,
        &[
            // Each tenant's chain head, advanced by compare-and-set in the transaction that appends
            // records (NFR-CMP-001): a writer whose head moved under it conflicts before any row is
            // written, and the audit table no longer needs (tenant, sequence) to be globally unique,
            // which PostgreSQL's monthly partitions cannot enforce (NFR-CMP-002).
            "CREATE TABLE IF NOT EXISTS audit_chain_heads (
                tenant_id TEXT PRIMARY KEY,
                sequence_number BIGINT NOT NULL,
                record_hash TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )",
            "INSERT INTO audit_chain_heads (tenant_id, sequence_number, record_hash, updated_at)
             SELECT a.tenant_id, a.sequence_number, a.record_hash, a.ingested_at FROM audit_records a
             WHERE a.sequence_number = (SELECT MAX(b.sequence_number) FROM audit_records b WHERE b.tenant_id = a.tenant_id)",
        ],
    ),
    (
        9,
        &[
            // The analyst API's listings (issue 10) read newest first across tenants and page by
            // keyset: these indexes let a page stop after its rows instead of sorting every row
            // (with its body) of the table.
            "CREATE INDEX IF NOT EXISTS investigations_recent ON investigations (updated_at, investigation_id)",
            "CREATE INDEX IF NOT EXISTS alerts_recent ON alerts (alert_time, tenant_id, alert_id)",
            "CREATE INDEX IF NOT EXISTS incidents_recent ON incidents (last_seen, incident_id)",
            "CREATE INDEX IF NOT EXISTS approvals_deadline ON approvals (deadline, approval_id)",
        ],
    ),
    // Incident memory's records (NFR-CMP-002): the table differs by database (SQLITE_EXTRAS,
    // POSTGRES_EXTRAS).
    (10, &[]),
    (
        11,
        &[
            // Optimistic versioning of incidents and grouping claims (several investigate
            // replicas): see `UPSERT_INCIDENT_ROWS` and `CLAIM_GROUPING_KEY_ROWS` in sql.rs.
            "ALTER TABLE incidents ADD COLUMN version BIGINT NOT NULL DEFAULT 0",
            "CREATE TABLE IF NOT EXISTS grouping_keys (
            tenant_id TEXT NOT NULL,
            entity_key TEXT NOT NULL,
            epoch BIGINT NOT NULL,
            PRIMARY KEY (tenant_id, entity_key)
        )",
        ],
    ),
];

/// The migration after which existing incidents' keys are indexed.
pub const INCIDENT_KEYS_VERSION: i64 = 5;

/// PostgreSQL-only statements, run after the shared statements of the version they are listed
/// under, in the same transaction.
///
/// - 1: the audit table refuses UPDATE and DELETE (NFR-CMP-001).
/// - 8: the audit table becomes partitioned by month of `event_time` (a range over its
///   `YYYY-MM` prefix; the column is collated "C" so the bounds compare bytewise, whatever the
///   database's collation), each month hash-partitioned by tenant into
///   [`AUDIT_TENANT_PARTITIONS`] (NFR-CMP-002). Records of a month without a partition land in
///   `audit_records_default`. `aluskort_audit_partition(month)` creates a month's partitions and is
///   called for the current and coming months ([`crate::PostgresStore::prepare_partitions`]);
///   old months can then be detached and archived whole. Existing rows are copied over in the same
///   transaction. (tenant, sequence) stays unique through `audit_chain_heads`, not the key.
pub const POSTGRES_EXTRAS: &[(i64, &[&str])] = &[
    (
        1,
        &[
            "CREATE OR REPLACE FUNCTION aluskort_audit_immutable() RETURNS trigger AS $$
     BEGIN RAISE EXCEPTION 'audit_records is append-only'; END; $$ LANGUAGE plpgsql",
            "DROP TRIGGER IF EXISTS audit_records_immutable ON audit_records",
            "CREATE TRIGGER audit_records_immutable BEFORE UPDATE OR DELETE ON audit_records
     FOR EACH ROW EXECUTE FUNCTION aluskort_audit_immutable()",
        ],
    ),
    (
        8,
        &[
            "ALTER TABLE audit_records RENAME TO audit_records_unpartitioned",
            "ALTER TABLE audit_records_unpartitioned RENAME CONSTRAINT audit_records_pkey TO audit_records_unpartitioned_pkey",
            "ALTER TABLE audit_records_unpartitioned RENAME CONSTRAINT audit_records_audit_id_key TO audit_records_unpartitioned_audit_id_key",
            "CREATE TABLE audit_records (
            tenant_id TEXT NOT NULL,
            sequence_number BIGINT NOT NULL,
            audit_id TEXT NOT NULL,
            previous_hash TEXT NOT NULL,
            event_time TEXT COLLATE \"C\" NOT NULL,
            ingested_at TEXT NOT NULL,
            event_type TEXT NOT NULL,
            event_category TEXT NOT NULL,
            severity TEXT NOT NULL,
            actor_type TEXT NOT NULL,
            actor_id TEXT NOT NULL,
            actor_permissions TEXT NOT NULL,
            investigation_id TEXT,
            alert_id TEXT,
            entity_ids TEXT NOT NULL,
            context TEXT NOT NULL,
            decision TEXT NOT NULL,
            outcome TEXT NOT NULL,
            record_hash TEXT NOT NULL,
            record_version TEXT NOT NULL,
            PRIMARY KEY (tenant_id, sequence_number, event_time)
        ) PARTITION BY RANGE (event_time)",
            "CREATE TABLE audit_records_default PARTITION OF audit_records DEFAULT",
            "CREATE INDEX IF NOT EXISTS audit_records_investigation ON audit_records (tenant_id, investigation_id)",
            // Creates month `month` (`YYYY-MM`) and its tenant partitions unless they exist; false
            // when the default partition already holds records of that month (they stay there).
            // The name is built from the validated month only.
            "CREATE OR REPLACE FUNCTION aluskort_audit_partition(month TEXT, tenant_partitions INTEGER) RETURNS BOOLEAN AS $$
     DECLARE
       first DATE;
       name TEXT;
     BEGIN
       IF month !~ '^[0-9]{4}-(0[1-9]|1[0-2])$' THEN
         RAISE EXCEPTION 'audit partition month % is not YYYY-MM', month;
       END IF;
       -- Replicas starting together: one creates, the others then find the partition.
       PERFORM pg_advisory_xact_lock(7305840522);
       first := to_date(month || '-01', 'YYYY-MM-DD');
       name := 'audit_records_' || to_char(first, 'YYYY_MM');
       IF to_regclass(name) IS NOT NULL THEN
         RETURN TRUE;
       END IF;
       IF EXISTS (SELECT 1 FROM audit_records_default WHERE event_time >= month AND event_time < to_char(first + INTERVAL '1 month', 'YYYY-MM')) THEN
         RETURN FALSE;
       END IF;
       EXECUTE format('CREATE TABLE %I PARTITION OF audit_records FOR VALUES FROM (%L) TO (%L) PARTITION BY HASH (tenant_id)',
                      name, month, to_char(first + INTERVAL '1 month', 'YYYY-MM'));
       FOR bucket IN 0 .. tenant_partitions - 1 LOOP
         EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES WITH (MODULUS %s, REMAINDER %s)',
                        name || '_t' || bucket, name, tenant_partitions, bucket);
       END LOOP;
       RETURN TRUE;
     END; $$ LANGUAGE plpgsql",
            // Every month the existing records span gets its partitions before they are copied.
            "SELECT aluskort_audit_partition(month, 4) FROM
               (SELECT DISTINCT substr(event_time, 1, 7) AS month FROM audit_records_unpartitioned
                WHERE substr(event_time, 1, 7) ~ '^[0-9]{4}-(0[1-9]|1[0-2])$') AS months",
            "INSERT INTO audit_records SELECT * FROM audit_records_unpartitioned",
            "DROP TABLE audit_records_unpartitioned",
            "CREATE TRIGGER audit_records_immutable BEFORE UPDATE OR DELETE ON audit_records
     FOR EACH ROW EXECUTE FUNCTION aluskort_audit_immutable()",
        ],
    ),
    (
        10,
        &[
            // One month-partitioning function for both partitioned tables; the audit one now
            // calls it. Names are built from the validated month and a fixed table list only.
            "CREATE OR REPLACE FUNCTION aluskort_month_partition(parent TEXT, month TEXT, tenant_partitions INTEGER) RETURNS BOOLEAN AS $$
     DECLARE
       first DATE;
       next_month TEXT;
       name TEXT;
       time_column TEXT;
       taken BOOLEAN;
     BEGIN
       IF parent = 'audit_records' THEN
         time_column := 'event_time';
       ELSIF parent = 'incident_memory' THEN
         time_column := 'closed_at';
       ELSE
         RAISE EXCEPTION 'table % has no monthly partitions', parent;
       END IF;
       IF month !~ '^[0-9]{4}-(0[1-9]|1[0-2])$' THEN
         RAISE EXCEPTION 'partition month % is not YYYY-MM', month;
       END IF;
       PERFORM pg_advisory_xact_lock(7305840522);
       first := to_date(month || '-01', 'YYYY-MM-DD');
       next_month := to_char(first + INTERVAL '1 month', 'YYYY-MM');
       name := parent || '_' || to_char(first, 'YYYY_MM');
       IF to_regclass(name) IS NOT NULL THEN
         RETURN TRUE;
       END IF;
       EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE %I >= $1 AND %I < $2)', parent || '_default', time_column, time_column)
         INTO taken USING month, next_month;
       IF taken THEN
         RETURN FALSE;
       END IF;
       EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L) PARTITION BY HASH (tenant_id)',
                      name, parent, month, next_month);
       FOR bucket IN 0 .. tenant_partitions - 1 LOOP
         EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES WITH (MODULUS %s, REMAINDER %s)',
                        name || '_t' || bucket, name, tenant_partitions, bucket);
       END LOOP;
       RETURN TRUE;
     END; $$ LANGUAGE plpgsql",
            "CREATE OR REPLACE FUNCTION aluskort_audit_partition(month TEXT, tenant_partitions INTEGER) RETURNS BOOLEAN AS $$
     BEGIN
       RETURN aluskort_month_partition('audit_records', month, tenant_partitions);
     END; $$ LANGUAGE plpgsql",
            "CREATE TABLE incident_memory (
                tenant_id TEXT NOT NULL,
                memory_id TEXT NOT NULL,
                closed_at TEXT COLLATE \"C\" NOT NULL,
                incident_id TEXT,
                body TEXT NOT NULL,
                recorded_at TEXT NOT NULL,
                PRIMARY KEY (tenant_id, memory_id, closed_at)
            ) PARTITION BY RANGE (closed_at)",
            "CREATE TABLE incident_memory_default PARTITION OF incident_memory DEFAULT",
            "CREATE INDEX IF NOT EXISTS incident_memory_tenant ON incident_memory (tenant_id, closed_at)",
            // Replacing a record finds its earlier copy by id, whatever its month.
            "CREATE INDEX IF NOT EXISTS incident_memory_id ON incident_memory (tenant_id, memory_id)",
            // Removes a month of incident memory (after `aluskort memory archive` stored it): its
            // rows wherever they are, then its partitions.
            "CREATE OR REPLACE FUNCTION aluskort_memory_drop_month(month TEXT, next_month TEXT) RETURNS BOOLEAN AS $$
     DECLARE
       name TEXT;
     BEGIN
       IF month !~ '^[0-9]{4}-(0[1-9]|1[0-2])$' THEN
         RAISE EXCEPTION 'month % is not YYYY-MM', month;
       END IF;
       DELETE FROM incident_memory WHERE closed_at >= month AND closed_at < next_month;
       name := 'incident_memory_' || replace(month, '-', '_');
       IF to_regclass(name) IS NOT NULL THEN
         EXECUTE format('DROP TABLE %I', name);
       END IF;
       RETURN TRUE;
     END; $$ LANGUAGE plpgsql",
        ],
    ),
];

/// SQLite-only statements, by version (PostgreSQL makes the same index on its new table).
pub const SQLITE_EXTRAS: &[(i64, &[&str])] = &[
    (8, &["CREATE INDEX IF NOT EXISTS audit_records_investigation ON audit_records (tenant_id, investigation_id)"]),
    (
        10,
        &[
            "CREATE TABLE IF NOT EXISTS incident_memory (
                tenant_id TEXT NOT NULL,
                memory_id TEXT NOT NULL,
                closed_at TEXT NOT NULL,
                incident_id TEXT,
                body TEXT NOT NULL,
                recorded_at TEXT NOT NULL,
                PRIMARY KEY (tenant_id, memory_id)
            )",
            "CREATE INDEX IF NOT EXISTS incident_memory_closed ON incident_memory (closed_at)",
            "CREATE INDEX IF NOT EXISTS incident_memory_tenant ON incident_memory (tenant_id, closed_at)",
        ],
    ),
];

/// Hash partitions per month of the PostgreSQL audit table (by tenant).
pub const AUDIT_TENANT_PARTITIONS: i32 = 4;
