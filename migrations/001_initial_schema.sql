-- 001_initial_schema: the catalogue's tables.
--
-- ISRC and Spotify ID get NON-unique indexes here on purpose: before migration 002 duplicates
-- may exist (older scrapers, hand inserts), and 002 is the step that merges them and makes the
-- indexes unique.
--
-- Every reference to tracks(id) is ON DELETE RESTRICT: deleting a track that still has
-- relationships must fail loudly, never silently drop the relationships (merges re-point first).
--
-- Every statement is IF NOT EXISTS, so running the file again changes nothing.
-- Run with: psql -v ON_ERROR_STOP=1 -f migrations/001_initial_schema.sql
BEGIN;

CREATE TABLE IF NOT EXISTS schema_migrations (
    migration_name text PRIMARY KEY,
    applied_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS tracks (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    title                 text NOT NULL,
    normalized_title      text NOT NULL,
    -- scrapers.identity.title_key(artist, title): the title tier's match key.
    title_key             text,
    isrc                  text,
    spotify_id            text,
    musicbrainz_id        uuid,
    duration_ms           integer CHECK (duration_ms > 0),
    bpm                   numeric(6, 2) CHECK (bpm > 0 AND bpm < 1000),
    key                   text,
    label                 text,
    release_date          date,
    genre                 text,
    is_remix              boolean NOT NULL DEFAULT false,
    -- "Extended Mix", "Radio Edit", "Live Edit": what makes this recording differ.
    version               text,
    -- Provenance of enriched values, raw identifiers that failed validation, source ids.
    metadata              jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Enrichment backfill state: pending (never tried), enriched, not_found, failed.
    enrichment_status     text NOT NULL DEFAULT 'pending'
        CHECK (enrichment_status IN ('pending', 'enriched', 'not_found', 'failed')),
    enrichment_checked_at timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS idx_tracks_isrc ON tracks (isrc);
CREATE INDEX IF NOT EXISTS idx_tracks_spotify_id ON tracks (spotify_id);
CREATE INDEX IF NOT EXISTS idx_tracks_title_key ON tracks (title_key);
CREATE INDEX IF NOT EXISTS idx_tracks_enrichment_queue
    ON tracks (enrichment_checked_at NULLS FIRST) WHERE isrc IS NULL;

CREATE TABLE IF NOT EXISTS artists (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name            text NOT NULL,
    -- scrapers.identity.artist_key(name)
    normalized_name text NOT NULL UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS track_artists (
    track_id  uuid NOT NULL REFERENCES tracks (id) ON DELETE RESTRICT,
    artist_id uuid NOT NULL REFERENCES artists (id) ON DELETE RESTRICT,
    role      text NOT NULL CHECK (role IN ('primary', 'featured', 'remixer')),
    -- Order of the credit within its role, as written.
    position  smallint NOT NULL DEFAULT 0,
    PRIMARY KEY (track_id, artist_id, role)
);
CREATE INDEX IF NOT EXISTS idx_track_artists_artist ON track_artists (artist_id);

CREATE TABLE IF NOT EXISTS setlists (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    source             text NOT NULL,
    source_id          text NOT NULL,
    url                text,
    title              text,
    djs                text[] NOT NULL DEFAULT '{}',
    event              text,
    set_date           date,
    genres             text[] NOT NULL DEFAULT '{}',
    stated_track_count integer,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source, source_id)
);

CREATE TABLE IF NOT EXISTS setlist_tracks (
    setlist_id           uuid NOT NULL REFERENCES setlists (id) ON DELETE CASCADE,
    -- Order of the row on the page (0-based); positions repeat or are absent for "w/" rows.
    row_index            integer NOT NULL CHECK (row_index >= 0),
    position             integer,
    played_with_previous boolean NOT NULL DEFAULT false,
    is_mashup            boolean NOT NULL DEFAULT false,
    mashup_parent_row    integer,
    cue_seconds          integer CHECK (cue_seconds >= 0),
    -- NULL for an unknown ("ID - ID") or partly unknown ("Artist - ID") row.
    track_id             uuid REFERENCES tracks (id) ON DELETE RESTRICT,
    raw_artist           text,
    raw_title            text,
    label                text,
    site_track_id        text,
    is_unknown           boolean NOT NULL DEFAULT false,
    is_partial_id        boolean NOT NULL DEFAULT false,
    PRIMARY KEY (setlist_id, row_index)
);
CREATE INDEX IF NOT EXISTS idx_setlist_tracks_track ON setlist_tracks (track_id);

-- Koito's lookup cache: every raw spelling seen, mapped to its track, so that a repeated crawl
-- or import resolves a row with one indexed read instead of the three tiers.
CREATE TABLE IF NOT EXISTS track_lookup (
    raw_artist   text NOT NULL,
    raw_title    text NOT NULL,
    track_id     uuid NOT NULL REFERENCES tracks (id) ON DELETE RESTRICT,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (raw_artist, raw_title)
);
CREATE INDEX IF NOT EXISTS idx_track_lookup_track ON track_lookup (track_id);

-- Items that could not be stored, with the reason and the item as JSON text (NUL-escaped), so
-- that a user can list and replay them.
CREATE TABLE IF NOT EXISTS rejected_items (
    id          bigserial PRIMARY KEY,
    origin      text NOT NULL,          -- "spider:1001tracklists", "import:<file>", ...
    location    text,                   -- URL, or file:line
    reason      text NOT NULL,
    payload     text NOT NULL,
    rejected_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_rejected_items_reason ON rejected_items (reason);

-- Identifier conflicts (an ISRC or Spotify ID claimed by two tracks, or a source contradicting
-- the stored value). The stored value is kept; the conflict is recorded here.
CREATE TABLE IF NOT EXISTS identifier_conflicts (
    id              bigserial PRIMARY KEY,
    identifier_type text NOT NULL CHECK (identifier_type IN ('isrc', 'spotify_id')),
    track_id        uuid REFERENCES tracks (id) ON DELETE RESTRICT,
    other_track_id  uuid REFERENCES tracks (id) ON DELETE RESTRICT,
    stored_value    text,
    incoming_value  text NOT NULL,
    origin          text NOT NULL,
    resolution      text NOT NULL,
    detected_at     timestamptz NOT NULL DEFAULT now()
);
-- Deleting or merging a track checks these references: without indexes, one scan per track.
CREATE INDEX IF NOT EXISTS idx_identifier_conflicts_track ON identifier_conflicts (track_id);
CREATE INDEX IF NOT EXISTS idx_identifier_conflicts_other_track
    ON identifier_conflicts (other_track_id);

INSERT INTO schema_migrations (migration_name) VALUES ('001_initial_schema')
ON CONFLICT (migration_name) DO NOTHING;

COMMIT;
