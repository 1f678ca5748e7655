-- Brain regions: ask by area of the Allen CCF hierarchy, not by exact acronym. The ontology is
-- the brain_regions table every connection holds (queries/reference/README.md: source, terms,
-- columns); units_annotated carries each unit's structure_id, parent chain, Beryl and Cosmos
-- areas. lake.regions computes the same in polars (tested to give the same units).

-- _known_region(region): region, or an error naming it when brain_regions has no such acronym.
CREATE OR REPLACE MACRO _known_region(region) AS CASE
    WHEN EXISTS (SELECT 1 FROM brain_regions AS k WHERE k.acronym = region) THEN region
    ELSE error('in_region: ''' || CAST(region AS VARCHAR)
        || ''' is not an acronym of the Allen CCF ontology (SELECT acronym, name FROM '
        || 'brain_regions lists them; acronyms are case-sensitive)')
END;

-- in_region(area, region): true when the acronym `area` is the structure `region` or one of its
-- descendants, e.g. in_region(structure_acronym, 'VIS') for VISp, VISp5, VISl, VISam, ... and
-- in_region(structure_acronym, 'HPF') for CA1, DG-mo, ... Acronyms match exactly (case
-- matters). False, never NULL, for an area that is NULL, not in the ontology, 'root' or 'void'
-- (units_annotated.structure_id is NULL for those); an error for a region that is not in the
-- ontology, so a typo does not quietly select nothing.
CREATE OR REPLACE MACRO in_region(area, region) AS coalesce(
    area IN (
        SELECT r.acronym FROM brain_regions AS r
        WHERE r.depth > 0 AND list_contains(r.path_acronyms, _known_region(region))
    ),
    false
);

-- _area_level(level): the grouping level of rates_by_area and psth_by_area as text:
-- 'structure' (the acronym as the source wrote it, the default), 'beryl', 'cosmos', or a depth
-- of the ontology (root 0, grey 1, CH 2, ..., Isocortex 5, VIS 6, VISp 7) given as a number or
-- as its text. Anything else is an error.
CREATE OR REPLACE MACRO _area_level(level) AS CASE
    WHEN CAST(level AS VARCHAR) IN ('structure', 'beryl', 'cosmos') THEN CAST(level AS VARCHAR)
    WHEN regexp_full_match(CAST(level AS VARCHAR), '[0-9]+')
        THEN CAST(CAST(CAST(level AS VARCHAR) AS BIGINT) AS VARCHAR)
    ELSE error('level must be ''structure'', ''beryl'', ''cosmos'' or a depth >= 0 of the '
        || 'ontology (root 0, Isocortex 5, VIS 6, VISp 7), not ' || CAST(level AS VARCHAR))
END;

-- _area_at(structure_acronym, beryl_acronym, cosmos_acronym, structure_path, level): a unit's
-- area at `level`, from its units_annotated columns: the acronym itself ('structure'), its
-- Beryl or Cosmos area, or the structure at that depth of its parent chain (the structure
-- itself when it is shallower). NULL at the levels other than 'structure' for acronyms not in
-- the ontology.
CREATE OR REPLACE MACRO _area_at(
    structure_acronym, beryl_acronym, cosmos_acronym, structure_path, level
) AS CASE _area_level(level)
    WHEN 'structure' THEN structure_acronym
    WHEN 'beryl' THEN beryl_acronym
    WHEN 'cosmos' THEN cosmos_acronym
    ELSE structure_path[
        least(TRY_CAST(_area_level(level) AS BIGINT) + 1, len(structure_path))
    ]
END;
