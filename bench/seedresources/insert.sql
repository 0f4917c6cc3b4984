-- The bulk of the benchmark's data set, one statement: for each organization
-- in bench_plan, live rows then soft-deleted ones. $1 is the creator of the
-- benchmarked tenant's (ord = 1) resources; other tenants get one made-up
-- creator each. Rows are inserted in created_at order, ids are UUIDv7 of
-- created_at (as postgres.NewID makes them), so the heap and the primary key
-- look like a table filled by the application over two years.
INSERT INTO resources (org_id, id, name, description, status, attributes, version,
                       created_by_user_id, created_at, updated_at, deleted_at)
SELECT s.org_id,
       (lpad(to_hex((extract(epoch FROM s.created_at) * 1000)::bigint), 12, '0') || '7'
        || substr(replace(gen_random_uuid()::text, '-', ''), 14))::uuid,
       left(CASE
           WHEN s.r_shape < 0.40 THEN w.adj || ' ' || w.noun || ' ' || s.num
           WHEN s.r_shape < 0.65 THEN w.adj || ' ' || w.noun || ' – ' || w.city
           WHEN s.r_shape < 0.80 THEN initcap(w.noun) || ' Q' || (1 + s.num % 4) || ' ' || (2023 + s.num % 4)
           WHEN s.r_shape < 0.90 THEN w.city || ' ' || w.noun || ' v' || (1 + s.num % 9)
           ELSE lower(w.adj) || '-' || w.noun || '-' || s.num
       END, 200),
       CASE WHEN s.r_desc < 0.4 THEN ''
            ELSE 'Notes on the ' || lower(w.adj) || ' ' || w.noun || ' for the ' || w.city || ' team.' END,
       CASE WHEN s.r_status < 0.10 THEN 'draft' WHEN s.r_status < 0.85 THEN 'active' ELSE 'archived' END,
       CASE WHEN s.r_attr < 0.2 THEN '{}'::jsonb
            WHEN s.r_attr < 0.6 THEN jsonb_build_object('priority', w.priority)
            ELSE jsonb_build_object('priority', w.priority, 'estimate_hours', s.num % 80,
                                    'tags', jsonb_build_array(w.noun, lower(w.city)))
       END,
       t.version,
       CASE WHEN s.ord = 1 THEN $1::uuid ELSE md5(s.org_id::text)::uuid END,
       s.created_at,
       t.updated_at,
       CASE WHEN s.dead THEN t.updated_at + (now() - t.updated_at) * s.r_del END
FROM (
    SELECT p.org_id, p.ord, g > p.live AS dead,
           -- Two years of history, denser toward now, as a growing product's.
           now() - interval '730 days' * power(random(), 1.5) AS created_at,
           random() AS r_shape, random() AS r_desc, random() AS r_status, random() AS r_attr,
           random() AS r_ver, random() AS r_upd, random() AS r_del,
           1 + floor(random() * 50)::int AS i_adj, 1 + floor(random() * 50)::int AS i_noun,
           1 + floor(random() * 20)::int AS i_city, 1000 + floor(random() * 9000)::int AS num
    FROM bench_plan p
    CROSS JOIN LATERAL generate_series(1, p.live + p.dead) AS g
) s
CROSS JOIN LATERAL (
    SELECT (ARRAY['Quarterly','Annual','Monthly','Weekly','Internal','External','Customer','Partner','Legacy','Draft',
                  'Final','Revised','Northern','Southern','Eastern','Western','Blue','Green','Red','Silver',
                  'Golden','Rapid','Quiet','Bright','Global','Local','Regional','Strategic','Shared','Private',
                  'Public','Primary','Secondary','Urgent','Seasonal','Experimental','Pilot','Core','Premium','Basic',
                  'Smart','Open','Secure','Mobile','Cloud','Digital','Hybrid','Remote','Summer','Winter'])[s.i_adj] AS adj,
           (ARRAY['report','invoice','contract','roadmap','campaign','dataset','dashboard','proposal','budget','forecast',
                  'survey','playbook','checklist','handbook','audit','backlog','release','milestone','prototype','workshop',
                  'webinar','newsletter','onboarding','migration','integration','pipeline','inventory','catalog','portfolio','pricing',
                  'review','retrospective','analysis','benchmark','deployment','incident','policy','agreement','estimate','timeline',
                  'sprint','storyboard','whitepaper','brief','spec','mockup','ledger','schedule','summary','template'])[s.i_noun] AS noun,
           (ARRAY['Berlin','Lisbon','Osaka','Toronto','Nairobi','Lima','Oslo','Austin','Seoul','Dublin',
                  'Zürich','Málaga','Kraków','São Paulo','Reykjavík','Montréal','Cairo','Denver','Hanoi','Perth'])[s.i_city] AS city,
           (ARRAY['low','medium','high'])[1 + s.num % 3] AS priority
) w
CROSS JOIN LATERAL (
    SELECT 1 + floor(power(s.r_ver, 3) * 8)::int AS version,
           CASE WHEN s.r_ver < 0.5 THEN s.created_at
                ELSE s.created_at + (now() - s.created_at) * s.r_upd END AS updated_at
) t
ORDER BY s.created_at
