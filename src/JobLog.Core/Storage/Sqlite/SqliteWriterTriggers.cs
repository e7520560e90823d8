using System.Text;
using SQLitePCL;

namespace JobLog.Storage.Sqlite;

/// <summary>
/// The writer's inserts without per-row triggers (docs/search.md, "What it costs the writer"). On SQLite every row an
/// INSERT writes into a table with an AFTER INSERT trigger costs about 20 µs of trigger machinery even when the trigger's
/// WHEN is false, and an FTS5 insert from a trigger costs about 100 µs a task (a statement per row into the virtual
/// table), where one <c>INSERT … SELECT</c> over a whole batch costs about 20. So, for the writer's transaction only:
/// <list type="number">
/// <item>the connection's triggers are switched off (<c>SQLITE_DBCONFIG_ENABLE_TRIGGER</c>, this connection only: every
/// other connection fires them as always, and this one is switched back before it is handed out for anything else);</item>
/// <item>a TEMP marker row holds the first rowid this batch can give a task and a run (<c>max(rowid) + 1</c>: SQLite
/// numbers new rows past the largest);</item>
/// <item>TEMP copies of the search index's UPDATE triggers and of the DELETE triggers (TEMP triggers fire whatever that
/// switch says) do what the originals do for rows that existed before the batch and skip the batch's own rows; the
/// rollups' UPDATE trigger is replaced by a capture of the rows the batch is about to update (<see cref="Capture"/>) and
/// one delta statement (<see cref="CountChanges"/>);</item>
/// <item>at the end, one statement per index or rollup adds the batch's own rows, as they are at the end of the batch,
/// which is what the INSERT trigger and the UPDATE triggers after it would have added up to.</item>
/// </list>
/// This is done only when every trigger on the task and run tables is one of JobLog's, exactly as its migrations write
/// it (<see cref="SqliteSearch.Create"/>, <see cref="SqliteSearch.Watermarked"/>, <see cref="LedgerRollups.SqliteUp"/>);
/// any other trigger (an application's, a later migration's) leaves the batch to the triggers, as before. With the
/// search index's watermark there is no search INSERT trigger to stand in for: <see cref="SqliteSearchIndexer"/> indexes
/// new rows in bulk steps, whichever way the batch ran.
/// </summary>
internal sealed class SqliteWriterTriggers(sqlite3 handle) : IDisposable
{
    private const int EnableTrigger = 1003; // SQLITE_DBCONFIG_ENABLE_TRIGGER

    // Past this, SQLite may number new rows at random instead of max(rowid) + 1: leave such a ledger to the triggers.
    private const long RowidLimit = 1L << 62;

    internal const string Marker = "JobLogWriterBatch";

    private const string T = "\"" + LedgerModel.Tasks + "\"";
    private const string R = "\"" + LedgerModel.Runs + "\"";
    private const string TaskFrom = "(SELECT \"TaskFrom\" FROM temp.\"" + Marker + "\")";
    private const string RunFrom = "(SELECT \"RunFrom\" FROM temp.\"" + Marker + "\")";

    internal const string TaskTextInsert = SqliteSearch.TaskText + "_Insert";
    internal const string RunTextInsert = SqliteSearch.RunText + "_Insert";
    internal const string RollupInsert = "JobLogTasks_Rollup_Insert";
    internal const string RollupUpdate = "JobLogTasks_Rollup_Update";
    internal const string RunRollupInsert = "JobLogTaskRuns_Rollup_Insert";
    internal const string FailureGroupsInsert = "JobLogTasks_FailureGroups_Insert";

    internal const string CreateMarker =
        "CREATE TEMP TABLE IF NOT EXISTS \"" + Marker + "\" (\"TaskFrom\" INTEGER NOT NULL, \"RunFrom\" INTEGER NOT NULL)";

    private const string SetMarker =
        "INSERT INTO temp.\"" + Marker + "\" (\"TaskFrom\", \"RunFrom\") " +
        "SELECT (SELECT coalesce(max(rowid), 0) + 1 FROM main." + T + "), (SELECT coalesce(max(rowid), 0) + 1 FROM main." + R + ")";

    private static readonly string[] ClearStatements = ["DELETE FROM temp.\"" + Marker + "\"", "DELETE FROM temp.\"" + Before + "\""];

    internal const string Before = "JobLogWriterBefore";

    internal const string CreateBefore =
        "CREATE TEMP TABLE IF NOT EXISTS \"" + Before + "\" (\"Row\" INTEGER PRIMARY KEY, \"State\" INTEGER, \"Name\" TEXT, \"IsInternal\" INTEGER, \"Stop\" TEXT)";

    // The rollup columns of tasks from earlier batches this batch is about to update, as they were before it.
    private const string CaptureRows =
        "INSERT OR IGNORE INTO temp.\"" + Before + "\" (\"Row\", \"State\", \"Name\", \"IsInternal\", \"Stop\") " +
        "SELECT rowid, \"State\", \"Name\", \"IsInternal\", \"Stop\" FROM main." + T + " WHERE \"Id\" IN (SELECT value FROM json_each(?1)) AND rowid < " + TaskFrom;

    /// <summary>What <c>JobLogTaskText_Insert</c> would have indexed, for the batch's tasks.</summary>
    internal const string IndexTasks =
        "INSERT INTO \"" + SqliteSearch.TaskText + "\"(rowid, \"Input\", \"TaskKwargs\") SELECT rowid, \"Input\", \"TaskKwargs\" FROM main." + T +
        " NOT INDEXED WHERE rowid >= " + TaskFrom + " AND (\"Input\" IS NOT NULL OR \"TaskKwargs\" IS NOT NULL) ORDER BY rowid";

    /// <summary>What <c>JobLogRunText_Insert</c> would have indexed, for the batch's runs.</summary>
    internal const string IndexRuns =
        "INSERT INTO \"" + SqliteSearch.RunText + "\"(rowid, \"ErrorMessage\") SELECT rowid, \"ErrorMessage\" FROM main." + R +
        " NOT INDEXED WHERE rowid >= " + RunFrom + " AND \"ErrorMessage\" IS NOT NULL ORDER BY rowid";

    /// <summary>
    /// What <c>JobLogTasks_Rollup_Insert</c> (and the updates after it) would have counted, for the batch's tasks. Each of
    /// these statements reads the batch's rows by rowid, <c>NOT INDEXED</c>: the planner otherwise walked the covering
    /// index (Name, State, DispatchedAt) of the whole ledger for the <c>GROUP BY</c> (session 26).
    /// </summary>
    internal const string CountTasks =
        "INSERT INTO \"" + LedgerRollups.Counts + "\" (\"State\", \"Name\", \"IsInternal\", \"Count\") " +
        "SELECT \"State\", \"Name\", \"IsInternal\", COUNT(*) FROM main." + T + " NOT INDEXED WHERE rowid >= " + TaskFrom +
        " GROUP BY \"State\", \"Name\", \"IsInternal\" ORDER BY 1, 2, 3 " +
        "ON CONFLICT (\"State\", \"Name\", \"IsInternal\") DO UPDATE SET \"Count\" = \"Count\" + excluded.\"Count\"; " +
        "INSERT INTO \"" + LedgerRollups.Minutes + "\" (\"Minute\", \"State\", \"Name\", \"IsInternal\", \"Count\") " +
        "SELECT substr(\"Stop\", 1, 16) || ':00', \"State\", \"Name\", \"IsInternal\", COUNT(*) FROM main." + T +
        " NOT INDEXED WHERE rowid >= " + TaskFrom + " AND \"Stop\" IS NOT NULL GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 " +
        "ON CONFLICT (\"Minute\", \"State\", \"Name\", \"IsInternal\") DO UPDATE SET \"Count\" = \"Count\" + excluded.\"Count\"; " +
        "INSERT INTO \"" + LedgerRollups.Hours + "\" (\"Hour\", \"State\", \"Name\", \"IsInternal\", \"Count\") " +
        "SELECT substr(\"Stop\", 1, 13) || ':00:00', \"State\", \"Name\", \"IsInternal\", COUNT(*) FROM main." + T +
        " NOT INDEXED WHERE rowid >= " + TaskFrom + " AND \"Stop\" IS NOT NULL GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 " +
        "ON CONFLICT (\"Hour\", \"State\", \"Name\", \"IsInternal\") DO UPDATE SET \"Count\" = \"Count\" + excluded.\"Count\"";

    /// <summary>What <c>JobLogTaskRuns_Rollup_Insert</c> (and the updates after it) would have added, for the batch's finished runs.</summary>
    internal static readonly string CountRuns =
        "INSERT INTO \"" + RunRollups.Minutes + "\" (\"Minute\", \"Name\", \"Runs\", \"TotalMilliseconds\", \"MaxMilliseconds\") " +
        "SELECT substr(\"Start\", 1, 16) || ':00', \"Name\", COUNT(*), SUM(d), MAX(d) FROM (SELECT \"Start\", \"Name\", " +
        RunRollups.SqliteMilliseconds("") + " AS d FROM main." + R + " NOT INDEXED WHERE rowid >= " + RunFrom +
        " AND \"State\" IN (2, 3, 4) AND \"Stop\" IS NOT NULL) GROUP BY 1, 2 ORDER BY 1, 2 " +
        "ON CONFLICT (\"Minute\", \"Name\") DO UPDATE SET \"Runs\" = \"Runs\" + excluded.\"Runs\", " +
        "\"TotalMilliseconds\" = \"TotalMilliseconds\" + excluded.\"TotalMilliseconds\", " +
        "\"MaxMilliseconds\" = max(\"MaxMilliseconds\", excluded.\"MaxMilliseconds\"); " +
        "INSERT INTO \"" + RunRollups.Hours + "\" (\"Hour\", \"Name\", \"Runs\", \"TotalMilliseconds\", \"MaxMilliseconds\") " +
        "SELECT substr(\"Start\", 1, 13) || ':00:00', \"Name\", COUNT(*), SUM(d), MAX(d) FROM (SELECT \"Start\", \"Name\", " +
        RunRollups.SqliteMilliseconds("") + " AS d FROM main." + R + " NOT INDEXED WHERE rowid >= " + RunFrom +
        " AND \"State\" IN (2, 3, 4) AND \"Stop\" IS NOT NULL) GROUP BY 1, 2 ORDER BY 1, 2 " +
        "ON CONFLICT (\"Hour\", \"Name\") DO UPDATE SET \"Runs\" = \"Runs\" + excluded.\"Runs\", " +
        "\"TotalMilliseconds\" = \"TotalMilliseconds\" + excluded.\"TotalMilliseconds\", " +
        "\"MaxMilliseconds\" = max(\"MaxMilliseconds\", excluded.\"MaxMilliseconds\")";

    /// <summary>
    /// What <c>JobLogTasks_Rollup_Update</c> would have moved, for the tasks from earlier batches this batch changed: the
    /// rows as they are now count +1, as they were (<see cref="Before"/>) -1, and a minute left empty is dropped. The captured
    /// rows lead the join (<c>CROSS JOIN</c>) and each task is read by its rowid (<c>NOT INDEXED</c>): the planner otherwise
    /// scanned the task table, or its Stop index, for every batch (session 26).
    /// </summary>
    internal const string CountChanges =
        "INSERT INTO \"" + LedgerRollups.Counts + "\" (\"State\", \"Name\", \"IsInternal\", \"Count\") " +
        "SELECT \"State\", \"Name\", \"IsInternal\", SUM(n) FROM (" +
        "SELECT t.\"State\", t.\"Name\", t.\"IsInternal\", 1 AS n FROM temp.\"" + Before + "\" b CROSS JOIN main." + T + " t NOT INDEXED ON t.rowid = b.\"Row\" " +
        "UNION ALL SELECT b.\"State\", b.\"Name\", b.\"IsInternal\", -1 FROM temp.\"" + Before + "\" b) " +
        "GROUP BY \"State\", \"Name\", \"IsInternal\" HAVING SUM(n) <> 0 ORDER BY 1, 2, 3 " +
        "ON CONFLICT (\"State\", \"Name\", \"IsInternal\") DO UPDATE SET \"Count\" = \"Count\" + excluded.\"Count\"; " +
        "INSERT INTO \"" + LedgerRollups.Minutes + "\" (\"Minute\", \"State\", \"Name\", \"IsInternal\", \"Count\") " +
        "SELECT substr(\"Stop\", 1, 16) || ':00', \"State\", \"Name\", \"IsInternal\", SUM(n) FROM (" +
        "SELECT t.\"Stop\", t.\"State\", t.\"Name\", t.\"IsInternal\", 1 AS n FROM temp.\"" + Before + "\" b CROSS JOIN main." + T + " t NOT INDEXED ON t.rowid = b.\"Row\" WHERE t.\"Stop\" IS NOT NULL " +
        "UNION ALL SELECT b.\"Stop\", b.\"State\", b.\"Name\", b.\"IsInternal\", -1 FROM temp.\"" + Before + "\" b WHERE b.\"Stop\" IS NOT NULL) " +
        "GROUP BY 1, 2, 3, 4 HAVING SUM(n) <> 0 ORDER BY 1, 2, 3, 4 " +
        "ON CONFLICT (\"Minute\", \"State\", \"Name\", \"IsInternal\") DO UPDATE SET \"Count\" = \"Count\" + excluded.\"Count\"; " +
        "DELETE FROM \"" + LedgerRollups.Minutes + "\" WHERE \"Count\" = 0 AND (\"Minute\", \"State\", \"Name\", \"IsInternal\") IN (" +
        "SELECT substr(b.\"Stop\", 1, 16) || ':00', b.\"State\", b.\"Name\", b.\"IsInternal\" FROM temp.\"" + Before + "\" b WHERE b.\"Stop\" IS NOT NULL); " +
        "INSERT INTO \"" + LedgerRollups.Hours + "\" (\"Hour\", \"State\", \"Name\", \"IsInternal\", \"Count\") " +
        "SELECT substr(\"Stop\", 1, 13) || ':00:00', \"State\", \"Name\", \"IsInternal\", SUM(n) FROM (" +
        "SELECT t.\"Stop\", t.\"State\", t.\"Name\", t.\"IsInternal\", 1 AS n FROM temp.\"" + Before + "\" b CROSS JOIN main." + T + " t NOT INDEXED ON t.rowid = b.\"Row\" WHERE t.\"Stop\" IS NOT NULL " +
        "UNION ALL SELECT b.\"Stop\", b.\"State\", b.\"Name\", b.\"IsInternal\", -1 FROM temp.\"" + Before + "\" b WHERE b.\"Stop\" IS NOT NULL) " +
        "GROUP BY 1, 2, 3, 4 HAVING SUM(n) <> 0 ORDER BY 1, 2, 3, 4 " +
        "ON CONFLICT (\"Hour\", \"State\", \"Name\", \"IsInternal\") DO UPDATE SET \"Count\" = \"Count\" + excluded.\"Count\"; " +
        "DELETE FROM \"" + LedgerRollups.Hours + "\" WHERE \"Count\" = 0 AND (\"Hour\", \"State\", \"Name\", \"IsInternal\") IN (" +
        "SELECT substr(b.\"Stop\", 1, 13) || ':00:00', b.\"State\", b.\"Name\", b.\"IsInternal\" FROM temp.\"" + Before + "\" b WHERE b.\"Stop\" IS NOT NULL)";

    private const string AddCount =
        "INSERT INTO \"" + LedgerRollups.Counts + "\" (\"State\", \"Name\", \"IsInternal\", \"Count\") VALUES (?1, ?2, ?3, ?4) " +
        "ON CONFLICT (\"State\", \"Name\", \"IsInternal\") DO UPDATE SET \"Count\" = \"Count\" + excluded.\"Count\"";

    private const string AddMinute =
        "INSERT INTO \"" + LedgerRollups.Minutes + "\" (\"Minute\", \"State\", \"Name\", \"IsInternal\", \"Count\") VALUES (?1, ?2, ?3, ?4, ?5) " +
        "ON CONFLICT (\"Minute\", \"State\", \"Name\", \"IsInternal\") DO UPDATE SET \"Count\" = \"Count\" + excluded.\"Count\"";

    private const string DropEmptyMinute =
        "DELETE FROM \"" + LedgerRollups.Minutes + "\" WHERE \"Minute\" = ?1 AND \"State\" = ?2 AND \"Name\" = ?3 AND \"IsInternal\" = ?4 AND \"Count\" = 0";

    private const string AddHour =
        "INSERT INTO \"" + LedgerRollups.Hours + "\" (\"Hour\", \"State\", \"Name\", \"IsInternal\", \"Count\") VALUES (?1, ?2, ?3, ?4, ?5) " +
        "ON CONFLICT (\"Hour\", \"State\", \"Name\", \"IsInternal\") DO UPDATE SET \"Count\" = \"Count\" + excluded.\"Count\"";

    private const string DropEmptyHour =
        "DELETE FROM \"" + LedgerRollups.Hours + "\" WHERE \"Hour\" = ?1 AND \"State\" = ?2 AND \"Name\" = ?3 AND \"IsInternal\" = ?4 AND \"Count\" = 0";

    private static readonly string[] Scripts =
        [
            Normalize(SqliteSearch.Create), Normalize(SqliteSearch.Watermarked), Normalize(SqliteSearch.Deduplicated), Normalize(SqliteSearch.Swept),
            Normalize(SqliteSearch.Distinct),
            Normalize(LedgerRollups.SqliteHoursUp), Normalize(RunRollups.SqliteHoursUp), Normalize(FailureGroupRollup.SqliteUp),
        ];

    // The search index's groups: with the watermark they have no INSERT trigger (SqliteSearchIndexer indexes new rows).
    private static readonly string[] SearchGroups = [SqliteSearch.TaskText + "_", SqliteSearch.RunText + "_"];

    private readonly List<string> _temporary = [];
    private long _schema = -1;
    private readonly SqliteStatementCache _sql = new(handle);
    private string[]? _finish;
    private bool _capture;
    private bool _off;

    /// <summary>Whether the last <see cref="Begin"/> switched the triggers off (for tests and the benchmark).</summary>
    internal bool Bypassing { get; private set; }

    /// <summary>
    /// Before the transaction: looks at the triggers again when the schema changed since the last batch, and keeps the
    /// TEMP copies in step with them.
    /// </summary>
    public void Prepare()
    {
        var schema = SchemaVersion();
        if (schema == _schema)
        {
            return;
        }

        DropCopies();
        _finish = null;
        var triggers = Triggers();
        if (Replicable(triggers, out var copies, out var finish))
        {
            // A pooled connection may still hold the copies of an executor that was not disposed.
            foreach (var (name, _) in copies)
            {
                Exec($"DROP TRIGGER IF EXISTS temp.\"{name}\"");
            }

            Exec(CreateMarker);
            Exec(CreateBefore);
            _capture = finish.Contains(CountChanges, StringComparison.Ordinal);
            foreach (var (name, sql) in copies)
            {
                Exec(sql);
                _temporary.Add(name);
            }

            _finish = Statements(finish);
        }

        // The TEMP objects do not change the main schema's version.
        _schema = SchemaVersion();
    }

    /// <summary>
    /// In the writer's transaction, before its first statement: switches the triggers off and sets the marker, when the
    /// schema is still the one <see cref="Prepare"/> looked at and the ledger's rowids are far from the limit; otherwise
    /// makes sure they are on.
    /// </summary>
    public void Begin()
    {
        Bypassing = false;
        if (_finish is null || SchemaVersion() != _schema || LargestRowid() >= RowidLimit)
        {
            Restore();
            return;
        }

        Run(SetMarker);
        if (!_off)
        {
            // Switching recompiles the connection's prepared statements, so the switch stays off between batches
            // (Restore switches it back before the connection is used for anything else).
            Check(raw.sqlite3_db_config(handle, EnableTrigger, 0, out _));
            _off = true;
        }

        Bypassing = true;
    }

    /// <summary>
    /// Before the batch changes the state, name, kind or stop of tasks it did not insert: keeps their rollup columns as
    /// they were (the first capture of a row wins), for <see cref="CountChanges"/>.
    /// </summary>
    public void Capture(IReadOnlyCollection<Guid> taskIds)
    {
        if (!Bypassing || !_capture || taskIds.Count == 0)
        {
            return;
        }

        var capture = Statement(CaptureRows);
        Check(raw.sqlite3_bind_text(capture, 1, (string)SqliteLedgerDatabase.Instance.IdList(taskIds)));
        Run(CaptureRows);
    }

    /// <summary>
    /// Whether this batch's rollup moves of tasks from earlier batches may be given as counts (<see cref="Move"/>) by a
    /// caller that knows each row's rollup columns before and after its update, instead of <see cref="Capture"/>.
    /// </summary>
    public bool CountsMoves => Bypassing && _capture;

    /// <summary>
    /// What <see cref="CountChanges"/> does for captured rows, from the caller's counts: each (state, name, kind) and each
    /// (minute, state, name, kind) moves by its sum, each hour by the sum of its minutes, and a minute or hour left empty is
    /// dropped. One statement per key, not per row.
    /// </summary>
    public void Move(Dictionary<(int State, string Name, bool IsInternal), long> counts, Dictionary<(string Minute, int State, string Name, bool IsInternal), long> minutes)
    {
        foreach (var ((state, name, isInternal), n) in counts)
        {
            if (n == 0)
            {
                continue;
            }

            var add = Statement(AddCount);
            Check(raw.sqlite3_bind_int64(add, 1, state));
            Check(raw.sqlite3_bind_text(add, 2, name));
            Check(raw.sqlite3_bind_int64(add, 3, isInternal ? 1 : 0));
            Check(raw.sqlite3_bind_int64(add, 4, n));
            Run(AddCount);
        }

        Dictionary<(string Hour, int State, string Name, bool IsInternal), long>? hours = null;
        foreach (var ((minute, state, name, isInternal), n) in minutes)
        {
            if (n == 0)
            {
                continue;
            }

            AddTime(AddMinute, DropEmptyMinute, minute, state, name, isInternal, n);
            hours ??= [];
            var hour = (string.Concat(minute.AsSpan(0, 13), ":00:00"), state, name, isInternal);
            hours[hour] = hours.GetValueOrDefault(hour) + n;
        }

        foreach (var ((hour, state, name, isInternal), n) in hours ?? [])
        {
            if (n != 0)
            {
                AddTime(AddHour, DropEmptyHour, hour, state, name, isInternal, n);
            }
        }
    }

    private void AddTime(string sql, string dropEmpty, string time, int state, string name, bool isInternal, long n)
    {
        var add = Statement(sql);
        Check(raw.sqlite3_bind_text(add, 1, time));
        Check(raw.sqlite3_bind_int64(add, 2, state));
        Check(raw.sqlite3_bind_text(add, 3, name));
        Check(raw.sqlite3_bind_int64(add, 4, isInternal ? 1 : 0));
        Check(raw.sqlite3_bind_int64(add, 5, n));
        Run(sql);
        if (n < 0)
        {
            var drop = Statement(dropEmpty);
            Check(raw.sqlite3_bind_text(drop, 1, time));
            Check(raw.sqlite3_bind_int64(drop, 2, state));
            Check(raw.sqlite3_bind_text(drop, 3, name));
            Check(raw.sqlite3_bind_int64(drop, 4, isInternal ? 1 : 0));
            Run(dropEmpty);
        }
    }

    /// <summary>In the writer's transaction, after its last statement: adds the batch's own rows and clears the marker.</summary>
    public void Finish()
    {
        if (Bypassing)
        {
            foreach (var statement in _finish!)
            {
                Run(statement);
            }

            foreach (var statement in ClearStatements)
            {
                Run(statement);
            }
        }
    }

    /// <summary>
    /// Switches the connection's triggers back on: before the connection is used for anything but the writer's batches
    /// (<see cref="SqliteExecutor.Connection"/>), and before a batch the triggers must handle.
    /// </summary>
    public void Restore()
    {
        if (_off)
        {
            _off = false;
            Check(raw.sqlite3_db_config(handle, EnableTrigger, 1, out _));
        }
    }

    /// <summary>
    /// Whether every trigger is JobLog's own (word for word as a migration creates it), and then the TEMP copies of its
    /// UPDATE and DELETE triggers and the statements that stand in for its INSERT triggers.
    /// </summary>
    internal static bool Replicable(IReadOnlyList<(string Name, string Sql)> triggers, out List<(string Name, string Sql)> copies, out string finish)
    {
        copies = [];
        var statements = new List<string>();
        // An index or rollup is taken over whole (its insert, update and delete triggers) or not at all.
        foreach (var group in new[] { SqliteSearch.TaskText + "_", SqliteSearch.RunText + "_", "JobLogTasks_Rollup_", "JobLogTaskRuns_Rollup_", "JobLogTasks_FailureGroups_" })
        {
            var present = triggers.Count(t => t.Name.StartsWith(group, StringComparison.Ordinal));
            var watermarked = present == 2 && SearchGroups.Contains(group) && !triggers.Any(t => t.Name == group + "Insert");
            if (present is not (0 or 3) && !watermarked)
            {
                finish = "";
                return false;
            }
        }

        foreach (var (name, sql) in triggers)
        {
            var normalized = Normalize(sql);
            if (!Scripts.Any(s => s.Contains(normalized, StringComparison.Ordinal))
                || !normalized.StartsWith($"CREATE TRIGGER \"{name}\" ", StringComparison.Ordinal))
            {
                finish = "";
                return false;
            }

            switch (name)
            {
                case TaskTextInsert:
                    statements.Add(IndexTasks);
                    break;
                case RunTextInsert:
                    statements.Add(IndexRuns);
                    break;
                case RollupInsert:
                    statements.Add(CountTasks);
                    break;
                case RunRollupInsert:
                    statements.Add(CountRuns);
                    break;
                case FailureGroupsInsert:
                    // Nothing to add: the writer's rows carry no failure groups (only the fill writes them), and the
                    // trigger counts only rows that do (FailureGroupRollup).
                    break;
                case RollupUpdate:
                    // Set-based over the captured rows (Begin): a TEMP trigger would cost ~40 µs a derived task.
                    statements.Add(CountChanges);
                    break;
                default:
                    if (Copy(name, normalized) is not { } copy)
                    {
                        finish = "";
                        return false;
                    }

                    copies.Add((name + "_Writer", copy));
                    break;
            }
        }

        finish = statements.Count == 0 ? "" : string.Join(";\n", statements) + ";\n";
        return statements.Count > 0 || copies.Count > 0;
    }

    /// <summary>
    /// The TEMP copy of an UPDATE or DELETE trigger on the task or run table: the same body, on <c>main</c>'s table, for
    /// the rows that existed before the batch (the marker's rowid); null for any other shape.
    /// </summary>
    internal static string? Copy(string name, string normalized)
    {
        var header = $"CREATE TRIGGER \"{name}\" ";
        var begin = normalized.IndexOf(" BEGIN ", StringComparison.Ordinal);
        if (begin < 0)
        {
            return null;
        }

        var head = normalized[header.Length..begin];
        string from;
        if (head.Contains($" ON {T}", StringComparison.Ordinal))
        {
            from = TaskFrom;
            head = head.Replace($" ON {T}", $" ON main.{T}", StringComparison.Ordinal);
        }
        else if (head.Contains($" ON {R}", StringComparison.Ordinal))
        {
            from = RunFrom;
            head = head.Replace($" ON {R}", $" ON main.{R}", StringComparison.Ordinal);
        }
        else
        {
            return null;
        }

        if (!head.StartsWith("AFTER UPDATE ", StringComparison.Ordinal) && !head.StartsWith("AFTER DELETE ", StringComparison.Ordinal))
        {
            return null;
        }

        var skip = $"old.rowid < {from}";
        var when = head.IndexOf(" WHEN ", StringComparison.Ordinal);
        head = when < 0 ? $"{head} WHEN {skip}" : $"{head[..when]} WHEN ({head[(when + 6)..]}) AND {skip}";
        return $"CREATE TEMP TRIGGER \"{name}_Writer\" {head}{normalized[begin..]}";
    }

    /// <summary>The SQL with every run of white space made one space (triggers are compared word for word).</summary>
    internal static string Normalize(string sql)
    {
        var sb = new StringBuilder(sql.Length);
        var space = false;
        foreach (var c in sql)
        {
            if (char.IsWhiteSpace(c))
            {
                space = sb.Length > 0;
                continue;
            }

            if (space)
            {
                sb.Append(' ');
                space = false;
            }

            sb.Append(c);
        }

        return sb.ToString();
    }

    private List<(string Name, string Sql)> Triggers()
    {
        var list = new List<(string, string)>();
        var rc = raw.sqlite3_prepare_v2(handle,
            $"SELECT name, sql FROM main.sqlite_master WHERE type = 'trigger' AND tbl_name IN ('{LedgerModel.Tasks}', '{LedgerModel.Runs}') ORDER BY name",
            out sqlite3_stmt statement);
        Check(rc);
        using (statement)
        {
            while ((rc = raw.sqlite3_step(statement)) == raw.SQLITE_ROW)
            {
                list.Add((raw.sqlite3_column_text(statement, 0).utf8_to_string(), raw.sqlite3_column_text(statement, 1).utf8_to_string() ?? ""));
            }
        }

        if (rc != raw.SQLITE_DONE)
        {
            Check(rc);
        }

        return list;
    }

    private long SchemaVersion() => Scalar("PRAGMA main.schema_version");

    private long LargestRowid() => Scalar($"SELECT max(coalesce((SELECT max(rowid) FROM main.{T}), 0), coalesce((SELECT max(rowid) FROM main.{R}), 0))");

    private long Scalar(string sql) => _sql.Scalar(sql);

    private sqlite3_stmt Statement(string sql) => _sql.Statement(sql);

    private void Run(string sql) => _sql.Run(sql);

    // One statement each: the scripts above separate theirs with "; " (no literal holds one).
    private static string[] Statements(string script) =>
        [.. script.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];

    /// <summary>
    /// Leaves the connection as it found it (a pooled connection is handed to the next user as it is): triggers on, no
    /// TEMP copies; then finalizes the statements.
    /// </summary>
    public void Dispose()
    {
        _sql.Dispose();
        Restore();
        DropCopies();
        _schema = -1;
    }

    private void DropCopies()
    {
        foreach (var name in _temporary)
        {
            Exec($"DROP TRIGGER IF EXISTS temp.\"{name}\"");
        }

        _temporary.Clear();
    }

    private void Exec(string sql) => Check(raw.sqlite3_exec(handle, sql));

    private void Check(int rc) => _sql.Check(rc);
}
