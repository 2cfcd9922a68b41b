"""The SQL of ``--bulk``'s staging load (``staging.StagedLoad``): the staging tables, which title
keys the SQL resolves and how, the new tracks' artists and credits, the spellings, what each
resolved row counts as, and the new artists' names: beside ``staging.py`` as ``statements.py`` is
beside ``batch.py``.
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
# Which title keys the SQL resolves (``staging``'s docstring says why these): ``import_new``
# (a new track each), ``import_target`` (an update of one stored track each), and the rest,
# ``import_tangled``, for the batch writer. ``import_matched``: how the writer would have matched
# each row of the first two, from the stored tracks as they were before the load wrote anything.
CLASSIFY = """
ANALYZE import_staging;
ANALYZE import_staged_credits;
CREATE TEMP TABLE import_groups ON COMMIT DROP AS
SELECT title_key, min(line) AS first_line, count(*) AS rows, count(DISTINCT isrc) AS isrcs,
       count(DISTINCT spotify_id) AS spotify_ids, min(isrc) AS isrc, min(spotify_id) AS spotify_id,
       count(*) FILTER (WHERE isrc IS NULL AND spotify_id IS NOT NULL) AS spotify_alone
FROM import_staging GROUP BY title_key;
-- Per row: the stored track its spelling names, and whether an earlier row of its title key
-- carried an identifier or its spelling (the writer's track has them by then).
CREATE TEMP TABLE import_rows ON COMMIT DROP AS
SELECT s.line, s.title_key, s.isrc, s.spotify_id, l.track_id AS spelled,
       s.line = min(s.line) OVER key AS first,
       coalesce(bool_or(s.isrc IS NOT NULL) OVER earlier, false) AS isrc_before,
       coalesce(bool_or(s.spotify_id IS NOT NULL) OVER earlier, false) AS spotify_before,
       row_number() OVER (PARTITION BY s.artist, s.title ORDER BY s.line) > 1 AS spelling_before
FROM import_staging s
LEFT JOIN track_lookup l ON l.raw_artist = s.artist AND l.raw_title = s.title
WINDOW key AS (PARTITION BY s.title_key),
       earlier AS (PARTITION BY s.title_key ORDER BY s.line
                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING);
ANALYZE import_rows;
-- Every stored track a title key's rows could match, by any tier's key.
CREATE TEMP TABLE import_reach ON COMMIT DROP AS
SELECT g.title_key, t.id AS track_id FROM import_groups g JOIN tracks t USING (title_key)
UNION SELECT r.title_key, t.id FROM import_rows r JOIN tracks t ON t.isrc = r.isrc
UNION SELECT r.title_key, t.id FROM import_rows r JOIN tracks t ON t.spotify_id = r.spotify_id
UNION SELECT r.title_key, r.spelled FROM import_rows r WHERE r.spelled IS NOT NULL;
ANALYZE import_reach;
-- Several identifiers of a kind, one that another title key's rows carry too, or a row held for
-- the writer (a track placed in a setlist: ``staging``'s docstring).
CREATE TEMP TABLE import_crossed ON COMMIT DROP AS
SELECT title_key FROM import_groups WHERE isrcs > 1 OR spotify_ids > 1
UNION SELECT s.title_key FROM import_staging s
      JOIN import_staging o ON o.isrc = s.isrc AND o.title_key <> s.title_key
UNION SELECT s.title_key FROM import_staging s
      JOIN import_staging o ON o.spotify_id = s.spotify_id AND o.title_key <> s.title_key
UNION SELECT s.title_key FROM import_staging s JOIN import_held h USING (line);
CREATE TEMP TABLE import_new ON COMMIT DROP AS
SELECT g.title_key, g.first_line, g.rows,
       (%(track_ids)s || lpad(to_hex(row_number() OVER (ORDER BY g.first_line)), 12, '0'))::uuid
           AS id
FROM import_groups g
WHERE NOT EXISTS (SELECT 1 FROM import_crossed c WHERE c.title_key = g.title_key)
  AND NOT EXISTS (SELECT 1 FROM import_reach r WHERE r.title_key = g.title_key);
-- One stored track within reach, reached by no other title key, holding a title key and no
-- identifier that contradicts the rows', but for a Spotify ID that only rows carrying the
-- track's ISRC carry (each matches it by ISRC; it keeps its own: a conflict, ``CONFLICTS``).
CREATE TEMP TABLE import_target ON COMMIT DROP AS
SELECT g.title_key, g.first_line, g.rows, r.id, g.spotify_id, t.isrc AS stored_isrc,
       t.spotify_id AS stored_spotify_id, t.title_key AS stored_title_key
FROM (SELECT title_key, (array_agg(track_id))[1] AS id FROM import_reach
      GROUP BY title_key HAVING count(*) = 1) AS r
JOIN import_groups g USING (title_key) JOIN tracks t ON t.id = r.id
WHERE NOT EXISTS (SELECT 1 FROM import_crossed c WHERE c.title_key = g.title_key)
  AND NOT EXISTS (SELECT 1 FROM import_reach o WHERE o.track_id = r.id
                  AND o.title_key <> g.title_key)
  AND t.title_key IS NOT NULL
  AND (g.isrc IS NULL OR t.isrc IS NULL OR t.isrc = g.isrc)
  AND (g.spotify_id IS NULL OR t.spotify_id IS NULL OR t.spotify_id = g.spotify_id
       OR (t.isrc = g.isrc AND g.spotify_alone = 0));
-- The writer's tiers, in its order (``resolution.Resolution._match``), against the stored track
-- as it was (``import_target``'s copy of its keys); NULL: the row would match no track (it
-- would make one).
CREATE TEMP TABLE import_matched ON COMMIT DROP AS
SELECT r.title_key, g.id IS NOT NULL AS stored,
       CASE WHEN r.isrc IS NOT NULL THEN 'isrc' WHEN r.spotify_id IS NOT NULL THEN 'spotify'
            ELSE 'title' END AS tier,
       CASE WHEN g.id IS NULL AND r.first THEN 'new'
            WHEN r.isrc IS NOT NULL AND (r.isrc = g.stored_isrc OR r.isrc_before) THEN 'isrc'
            WHEN r.spotify_id IS NOT NULL
                 AND (r.spotify_id = g.stored_spotify_id OR r.spotify_before) THEN 'spotify'
            WHEN r.spelled IS NOT NULL OR r.spelling_before THEN 'spelling'
            WHEN g.id IS NULL OR g.stored_title_key = r.title_key THEN 'title' END AS matched
FROM import_rows r LEFT JOIN import_target g USING (title_key)
WHERE g.id IS NOT NULL OR r.title_key IN (SELECT title_key FROM import_new);
-- A row that would make a track makes the order matter: its title key is the writer's.
DELETE FROM import_target g
WHERE g.title_key IN (SELECT title_key FROM import_matched WHERE matched IS NULL);
DELETE FROM import_matched m
WHERE NOT EXISTS (SELECT 1 FROM import_new n WHERE n.title_key = m.title_key)
  AND NOT EXISTS (SELECT 1 FROM import_target g WHERE g.title_key = m.title_key);
CREATE TEMP TABLE import_resolved ON COMMIT DROP AS
SELECT title_key, id FROM import_new UNION ALL SELECT title_key, id FROM import_target;
CREATE TEMP TABLE import_tangled ON COMMIT DROP AS
SELECT title_key FROM import_groups
EXCEPT SELECT title_key FROM import_resolved;
ANALYZE import_new;
ANALYZE import_target;
ANALYZE import_resolved;
"""
# After a data error in a statement storing the resolved groups (rolled back): every group is
# the writer's.
TANGLE_ALL = """
INSERT INTO import_tangled SELECT title_key FROM import_resolved;
TRUNCATE import_new, import_target, import_matched, import_resolved;
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
"""
# Each spelling not known yet names the track of its title key (an updated track keeps the
# spellings it had).
LOOKUP = """
INSERT INTO track_lookup (raw_artist, raw_title, track_id)
SELECT DISTINCT ON (s.artist, s.title) s.artist, s.title, r.id
FROM import_staging s JOIN import_resolved r USING (title_key)
WHERE NOT EXISTS (
    SELECT 1 FROM track_lookup l WHERE l.raw_artist = s.artist AND l.raw_title = s.title
)
ORDER BY s.artist, s.title, s.line;
"""
# ``conflict_policy.decide`` for the updated tracks: the one conflict they can have (a Spotify ID
# that contradicts the stored one, ``import_target``), recorded unless it is already, as
# ``conflicts.insert_conflicts`` does.
CONFLICTS = """
INSERT INTO identifier_conflicts (identifier_type, track_id, other_track_id, stored_value,
                                  incoming_value, origin, resolution)
SELECT %(spotify_id)s, g.id, NULL, g.stored_spotify_id, g.spotify_id, %(origin)s, %(kept_stored)s
FROM import_target g
WHERE g.stored_spotify_id <> g.spotify_id
  AND NOT EXISTS (
      SELECT 1 FROM identifier_conflicts x
      WHERE x.identifier_type = %(spotify_id)s AND x.track_id = g.id
        AND x.other_track_id IS NULL AND x.stored_value = g.stored_spotify_id
        AND x.incoming_value = g.spotify_id AND x.resolution = %(kept_stored)s)
ORDER BY g.first_line
RETURNING track_id::text, stored_value, incoming_value
"""
# Per resolved row: whether its track was stored before, its tier, and how the writer would have
# matched it ("new": it made the track).
OUTCOMES = "SELECT stored, tier, matched, count(*) FROM import_matched GROUP BY 1, 2, 3"
# The writer names a new artist as the first row (in file order) that made a track crediting it
# spells it. New groups are inserted before the tangled rows, so an artist a tangled row made
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
