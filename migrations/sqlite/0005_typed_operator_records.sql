-- 0005: the operator's records are typed. A run's default durability is a column (it was the reserved parameter
-- `troupe.durability`, which a blueprint could not use and every listing had to hide); a command's result says
-- whether it was applied, refused or failed in a column of its own (it was a prefix of the result text).
ALTER TABLE runs ADD COLUMN durability TEXT;
UPDATE runs SET durability = json_extract(parameters, '$."troupe.durability"'),
    parameters = json_remove(parameters, '$."troupe.durability"')
    WHERE json_valid(parameters) AND json_extract(parameters, '$."troupe.durability"') IS NOT NULL;
ALTER TABLE commands ADD COLUMN outcome TEXT;
UPDATE commands SET outcome = CASE
    WHEN result LIKE 'failed%' THEN 'failed'
    WHEN result LIKE 'refused%' THEN 'refused'
    ELSE 'applied' END
    WHERE result IS NOT NULL;
