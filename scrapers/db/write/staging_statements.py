"""The SQL of ``--bulk``'s staging load (``staging.StagedLoad``): the staging tables, which title
keys are tangled, the simple groups' artists, credits and spellings, what each simple row counts
as, and the new artists' names: beside ``staging.py`` as ``statements.py`` is beside ``batch.py``.
"""

CREATE = """
CREATE TEMP TABLE import_staging (
    line bigint NOT NULL, location text, digest bytea, artist text NOT NULL, title text NOT NULL,
    title_key text NOT NULL, normalized_title text NOT NULL, isrc text, spotify_id text,
    is_remix boolean NOT NULL, bpm numeric, duration_ms integer, key text, label text,
    release_date date, genre text, musicbrainz_id uuid, version text, metadata jsonb NOT NULL,
    enrichment_status text, invalid_identifiers text[] NOT NULL DEFAULT '{}'
) ON COMMIT DROP;
CREATE TEMP TABLE import_staged_credits (
    line bigint NOT NULL, position integer NOT NULL, name text NOT NULL, artist_key text NOT NULL,
    role text NOT NULL
) ON COMMIT DROP;
CREATE TEMP TABLE import_held (
    line bigint NOT NULL, location text, digest bytea, record bytea NOT NULL,
    setlist_source text, setlist_source_id text, row_index integer
) ON COMMIT DROP;
"""
# Title keys whose rows go through the batch writer (see ``staging``'s docstring).
TANGLED = """
ANALYZE import_staging;
ANALYZE import_staged_credits;
CREATE TEMP TABLE import_groups ON COMMIT DROP AS
SELECT title_key, min(line) AS first_line, count(*) AS rows, count(DISTINCT isrc) AS isrcs,
       count(DISTINCT spotify_id) AS spotify_ids, min(isrc) AS isrc, min(spotify_id) AS spotify_id
FROM import_staging GROUP BY title_key;
CREATE TEMP TABLE import_tangled ON COMMIT DROP AS
SELECT title_key FROM import_groups WHERE isrcs > 1 OR spotify_ids > 1
UNION SELECT g.title_key FROM import_groups g JOIN tracks t ON t.title_key = g.title_key
UNION SELECT g.title_key FROM import_groups g JOIN tracks t ON t.isrc = g.isrc
UNION SELECT g.title_key FROM import_groups g JOIN tracks t ON t.spotify_id = g.spotify_id
UNION SELECT s.title_key FROM import_staging s
      JOIN import_staging o ON o.isrc = s.isrc AND o.title_key <> s.title_key
UNION SELECT s.title_key FROM import_staging s
      JOIN import_staging o ON o.spotify_id = s.spotify_id AND o.title_key <> s.title_key
UNION SELECT s.title_key FROM import_staging s
      JOIN track_lookup l ON l.raw_artist = s.artist AND l.raw_title = s.title
UNION SELECT s.title_key FROM import_staging s JOIN import_held h USING (line);
CREATE TEMP TABLE import_new ON COMMIT DROP AS
SELECT g.title_key, g.first_line, g.rows,
       (%(track_ids)s || lpad(to_hex(row_number() OVER (ORDER BY g.first_line)), 12, '0'))::uuid
           AS id
FROM import_groups g
WHERE NOT EXISTS (SELECT 1 FROM import_tangled t WHERE t.title_key = g.title_key);
ANALYZE import_new;
"""
# After a data error in the simple groups' insert: no group is simple.
TANGLE_ALL = """
INSERT INTO import_tangled SELECT title_key FROM import_new;
TRUNCATE import_new;
"""
ARTISTS = """
INSERT INTO artists (id, normalized_name, name)
SELECT (%(artist_ids)s || lpad(to_hex(row_number() OVER (ORDER BY x.artist_key)), 12, '0'))::uuid,
       x.artist_key, x.name
FROM (
    SELECT DISTINCT ON (c.artist_key) c.artist_key, c.name
    FROM import_new n JOIN import_staged_credits c ON c.line = n.first_line
    ORDER BY c.artist_key, c.line, c.position
) AS x
WHERE NOT EXISTS (SELECT 1 FROM artists a WHERE a.normalized_name = x.artist_key)
ORDER BY 1;
INSERT INTO track_artists (track_id, artist_id, role, position)
SELECT n.id, a.id, c.role, row_number() OVER (PARTITION BY c.line, c.role ORDER BY c.position) - 1
FROM import_new n JOIN import_staged_credits c ON c.line = n.first_line
JOIN artists a ON a.normalized_name = c.artist_key
ORDER BY 1, 2;
INSERT INTO track_lookup (raw_artist, raw_title, track_id)
SELECT DISTINCT ON (s.artist, s.title) s.artist, s.title, n.id
FROM import_staging s JOIN import_new n USING (title_key)
ORDER BY s.artist, s.title, s.line;
"""
# Per simple row: its tier, whether it made its track, and how the writer would have matched it
# (the track gains each identifier from the first of its rows that carries it).
OUTCOMES = """
SELECT CASE WHEN isrc IS NOT NULL THEN 'isrc' WHEN spotify_id IS NOT NULL THEN 'spotify'
            ELSE 'title' END,
       CASE WHEN line = first_line THEN 'new'
            WHEN isrc IS NOT NULL AND isrc_before THEN 'isrc'
            WHEN spotify_id IS NOT NULL AND spotify_before THEN 'spotify'
            WHEN spelling_before THEN 'spelling' ELSE 'title' END,
       count(*)
FROM (
    SELECT s.isrc, s.spotify_id, s.line, n.first_line,
           coalesce(bool_or(s.isrc IS NOT NULL) OVER earlier, false) AS isrc_before,
           coalesce(bool_or(s.spotify_id IS NOT NULL) OVER earlier, false) AS spotify_before,
           row_number() OVER (PARTITION BY s.artist, s.title ORDER BY s.line) > 1
               AS spelling_before
    FROM import_staging s JOIN import_new n USING (title_key)
    WINDOW earlier AS (PARTITION BY s.title_key ORDER BY s.line
                       ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
) AS rows
GROUP BY 1, 2
"""
# The writer names a new artist as the first row (in file order) that made a track crediting it
# spells it. Simple groups are inserted before the tangled rows, so an artist a tangled row made
# a track with first is named here, once every track is made (a track's row made it first). A
# row's track is known by its digest (``known_rows``), or for a setlist row, whose digest the
# writer does not store, by the setlist row it placed with its spelling.
ARTIST_NAMES = """
WITH tangled_keys AS (
    SELECT DISTINCT c.artist_key
    FROM import_staged_credits c JOIN import_staging s USING (line)
    JOIN import_tangled t ON t.title_key = s.title_key
), made AS (
    SELECT DISTINCT ON (m.track_id) m.line
    FROM (
        SELECT d.track_id, s.line
        FROM import_staging s JOIN import_row_digests d ON d.digest = s.digest
        UNION ALL
        SELECT r.track_id, h.line
        FROM import_held h JOIN import_staging s USING (line)
        JOIN setlists l ON l.source = h.setlist_source AND l.source_id = h.setlist_source_id
        JOIN setlist_tracks r ON r.setlist_id = l.id AND r.row_index = h.row_index
             AND r.raw_artist = s.artist AND r.raw_title = s.title
    ) AS m JOIN tracks t ON t.id = m.track_id
    WHERE t.created_at = now()
    ORDER BY m.track_id, m.line
), first_spelling AS (
    SELECT DISTINCT ON (c.artist_key) c.artist_key, c.name
    FROM made JOIN import_staged_credits c USING (line)
    WHERE c.artist_key IN (SELECT artist_key FROM tangled_keys)
    ORDER BY c.artist_key, c.line, c.position
)
UPDATE artists a SET name = f.name FROM first_spelling f
WHERE a.normalized_name = f.artist_key AND a.created_at = now() AND a.name <> f.name
"""
