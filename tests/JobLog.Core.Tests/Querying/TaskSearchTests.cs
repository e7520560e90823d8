using JobLog.Failures;
using JobLog.Querying;
using JobLog.Recording;
using JobLog.Storage;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.Core.Tests.Querying;

/// <summary>
/// The task list's <c>q</c>: through the text indexes (SQLite FTS5 trigram, PostgreSQL pg_trgm) it finds exactly the
/// tasks a substring search over Input, TaskKwargs and the runs' ErrorMessage finds, hostile text included; ids find
/// their tasks.
/// </summary>
[TestFixture(LedgerProvider.Sqlite)]
[TestFixture(LedgerProvider.PostgreSql)]
public class TaskSearchTests(LedgerProvider provider)
{
    private static readonly DateTime T0 = new(2026, 3, 1, 8, 0, 0, DateTimeKind.Utc);

    private static readonly string[] Inputs =
    [
        "ChargeCard(OrderId=ORD-2026-000123, Amount=10.00)",
        "ChargeCard(OrderId=ORD-2026-000124, Amount=99.90)",
        "ShipOrder { \"order\": \"ord-2026-000123\", \"note\": \"say \\\"hi\\\" (NEAR) -x: y*z\" }",
        "Refund 100% of order_77 via C:\\pay\\refunds (a OR b) NOT c AND d ^start",
        "plain text with it's quote and {Input}: column syntax",
        "ab",
        "",
    ];

    private static readonly string[] Queries =
    [
        "ORD-2026-000123", "ord-2026", "000124", "Amount=", "amount=99", "ChargeCard", "zzz-not-there",
        "timeout", "TimeoutException", "Gateway", "connection refused",
        "\"", "\"\"", "\"hi\"", "say \"hi", "(NEAR)", "NEAR", "NEAR(a b)", "-x", "-x:", "y*z", "*", "order*", "x: y",
        "100%", "%", "_77", "_", "\\pay\\", "\\", "(a OR b)", "NOT c", "AND d", "^start", "^", "it's", "'", "{Input}:", "Input:",
        "ab", "b", "or", "0", "1.", "- ", "ORD", "OR",
        // JobLog's [failure group: …] line is not part of the text shown, so not searched; the text after it is.
        "failure", "failure group", "[failure group: System", "InvalidOperationException at Shop", "Decline]", "Charge bounced",
        "Shop.Billing.Decline", "Payments.Charge(",
    ];

    /// <summary>A run's error as the recording path keeps it when the message forges a frame: JobLog's line first.</summary>
    private const string Stated =
        "[failure group: System.InvalidOperationException at Shop.Billing.Decline]\nSystem.InvalidOperationException: Charge bounced\n" +
        "   at Shop.Payments.Charge(\n   at Shop.Billing.Decline() in /src/B.cs:line 3";

    private LedgerHost _host = null!;
    private List<TaskLog> _tasks = null!;

    [SetUp]
    public async Task SetUp()
    {
        _host = await LedgerHost.StartAsync(await Ledgers.CreateAsync(provider));
        _tasks = Inputs.Select((input, i) => new TaskLog
        {
            Id = Guid.NewGuid(), Name = "Task" + i, DispatchedAt = T0.AddMinutes(i), State = TaskState.Succeeded,
            Input = input.Length == 0 ? null : input, TaskKwargs = i % 2 == 0 ? $"{{\"Sequence\": {i}, \"Kind\": \"Kw{i}\"}}" : null,
            CorrelationId = Guid.NewGuid(), ConversationId = Guid.NewGuid(), TraceId = Convert.ToHexStringLower(Guid.NewGuid().ToByteArray()),
        }).ToList();
        _tasks[1].Runs.Add(Run(_tasks[1].Id, "System.TimeoutException: The gateway did not answer in 30 s", TaskRunState.Retried));
        _tasks[1].Runs.Add(Run(_tasks[1].Id, null, TaskRunState.Succeeded));
        _tasks[4].Runs.Add(Run(_tasks[4].Id, "Npgsql.NpgsqlException: connection refused (\"db\")", TaskRunState.Failed));
        _tasks[6].Runs.Add(Run(_tasks[6].Id, "timeout after 5 s", TaskRunState.Failed));
        _tasks[5].Runs.Add(Run(_tasks[5].Id, Stated, TaskRunState.Failed));
        await _host.QueryAsync(db =>
        {
            db.AddRange(_tasks);
            return db.SaveChangesAsync();
        });
        await IndexPendingAsync();
    }

    /// <summary>SQLite: the search index's bulk step (the rows past its watermark are indexed), as the writer takes it.</summary>
    private Task IndexPendingAsync() => provider != LedgerProvider.Sqlite ? Task.CompletedTask : _host.QueryAsync(async db =>
    {
        await using var transaction = await db.Database.BeginTransactionAsync();
        await db.Database.ExecuteSqlRawAsync(JobLog.Storage.Sqlite.SqliteSearch.IndexPending);
        await transaction.CommitAsync();
        return 0;
    });

    [TearDown]
    public async Task TearDown() => await _host.DisposeAsync();

    private static TaskRunLog Run(Guid taskId, string? error, TaskRunState state) => new()
    {
        Id = Guid.NewGuid(), TaskId = taskId, Name = "Run", ConsumerType = "Consumer", Start = T0, Stop = T0.AddSeconds(1), State = state,
        ErrorMessage = error,
    };

    private static bool Has(string? text, string q) => text?.Contains(q, StringComparison.OrdinalIgnoreCase) == true;

    /// <summary>What a substring search over the three columns finds, computed in memory (errors as they are shown).</summary>
    private IEnumerable<Guid> Substring(string q) => _tasks
        .Where(t => Has(t.Input, q) || Has(t.TaskKwargs, q) || t.Runs.Any(r => Has(FailureSignature.Unstated(r.ErrorMessage), q)))
        .Select(t => t.Id);

    /// <summary>Every page of the search, followed by cursor; <paramref name="window"/> 0 goes straight to the indexes.</summary>
    private async Task<List<Guid>> SearchAsync(string q, int window = 0, int limit = 500, bool searchIndex = true, int rareWindow = 100)
    {
        await using var scope = _host.Services.CreateAsyncScope();
        var queries = searchIndex
            ? scope.ServiceProvider.GetRequiredService<LedgerQueries>()
            : new LedgerQueries(scope.ServiceProvider.GetRequiredService<JobLogDbContext>(), scope.ServiceProvider.GetRequiredService<LedgerDatabase>(), searchIndex: false);
        queries.SearchWindow = window;
        queries.RareSearchWindow = rareWindow;
        var found = new List<Guid>();
        string? cursor = null;
        do
        {
            var page = await queries.TasksAsync(
                TaskFilter.Parse(n => n switch { "q" => q, "limit" => limit.ToString(), "cursor" => cursor, _ => null }, T0), CancellationToken.None);
            found.AddRange(page.Items.Select(t => t.Id));
            cursor = page.NextCursor;
        }
        while (cursor is not null);

        return found;
    }

    [TestCase(0, 500, TestName = "Search_FindsExactlyWhatASubstringSearchFinds_ThroughTheIndexes")]
    [TestCase(3, 1, TestName = "Search_FindsExactlyWhatASubstringSearchFinds_ThroughTheNewestRowsThenTheIndexes")]
    [TestCase(100, 2, TestName = "Search_FindsExactlyWhatASubstringSearchFinds_ThroughTheNewestRows")]
    // A text that looks rare (ORD-2026-000123, 000124): the newest 3 rows first, then the indexes or the newest 100.
    [TestCase(100, 1, 3, TestName = "Search_FindsExactlyWhatASubstringSearchFinds_ThroughAFewNewestRowsForARareLookingText")]
    [TestCase(100, 1, 0, TestName = "Search_FindsExactlyWhatASubstringSearchFinds_StraightToTheIndexesForARareLookingText")]
    public async Task Search_FindsExactlyWhatASubstringSearchFinds(int window, int limit, int rareWindow = 100)
    {
        foreach (var q in Queries)
        {
            var found = await SearchAsync(q, window, limit, rareWindow: rareWindow);

            Assert.That(found, Is.EqualTo(Substring(q.Trim()).Reverse()), $"q = [{q}], newest first");
            // The former search (a substring of Input only) found a subset of these.
            Assert.That(found, Is.SupersetOf(_tasks.Where(t => Has(t.Input, q.Trim())).Select(t => t.Id)), $"q = [{q}]");
        }
    }

    [TestCase(0, 500)]
    [TestCase(3, 1)]
    public async Task Search_WithRowsPastTheIndexWatermark_FindsExactlyWhatASubstringSearchFinds(int window, int limit)
    {
        // Written after the index's last step: on SQLite these rows are past the watermark, checked one by one.
        var later = Inputs.Select((input, i) => new TaskLog
        {
            Id = Guid.NewGuid(), Name = "Later" + i, DispatchedAt = T0.AddHours(1).AddMinutes(i), State = TaskState.Succeeded,
            Input = input.Length == 0 ? null : input, TaskKwargs = i % 2 == 1 ? $"{{\"Later\": {i}}}" : null,
        }).ToList();
        later[3].Runs.Add(Run(later[3].Id, "System.TimeoutException: the gateway did not answer", TaskRunState.Failed));
        later[5].Runs.Add(Run(later[5].Id, Stated, TaskRunState.Failed));
        // A run written late for a task that is indexed already.
        var lateRun = Run(_tasks[5].Id, "late error: NEAR(a b) 100%", TaskRunState.Failed);
        await _host.QueryAsync(db =>
        {
            db.AddRange(later);
            db.Add(lateRun);
            return db.SaveChangesAsync();
        });
        _tasks.AddRange(later);
        _tasks[5].Runs.Add(lateRun);
        if (provider == LedgerProvider.Sqlite)
        {
            Assert.That(await _host.QueryAsync(db => db.Database.SqlQueryRaw<long>(
                "SELECT (SELECT max(rowid) FROM \"JobLogTasks\") - \"Tasks\" AS \"Value\" FROM \"JobLogSearchWatermark\"").SingleAsync()), Is.EqualTo(later.Count));
        }

        foreach (var q in Queries)
        {
            var found = await SearchAsync(q, window, limit);

            Assert.That(found, Is.EquivalentTo(Substring(q.Trim())), $"q = [{q}]");
        }

        Assert.That(await SearchAsync("Later\": 3"), Is.EqualTo(new[] { later[3].Id }));
        Assert.That(await SearchAsync("NEAR(a b) 100"), Is.EqualTo(new[] { _tasks[5].Id }));
    }

    /// <summary>
    /// Hostile <c>q</c> values not in <see cref="Queries"/> (session 42): unbalanced parentheses, FTS5 column filters and
    /// operators around real text, bidirectional controls, a character outside the BMP, the longest
    /// <c>q</c> taken (200 characters: 100 one-letter terms, or one run of a character), on both ledgers.
    /// </summary>
    private static readonly string[] HostileQueries =
    [
        "((((", "))", "(a OR", "b) NOT c", "NOT c AND", "\"*\"", "*\"", "Input:ChargeCard", "Input : ChargeCard", "TaskKwargs:", "{Input TaskKwargs}: x",
        "NEAR(ChargeCard Amount, 5)", "NEAR(ChargeCard", "ORD-2026-000123 OR zzz", "ChargeCard AND Refund", "ord* AND", "^Refund", "+ORD", "ORD:",
        "\u202Eorder", "order\u200F", "\u2066\u2069", "\u202E", "\U0001F600", "ab\U0001F600", "\uFFFD", "\uFEFF",
        string.Join(' ', Enumerable.Repeat("a", 100))[..199], new string('(', 200), new string('"', 200), new string('*', 200), string.Concat(Enumerable.Repeat("OR ", 66)) + "ab",
        "ORD-2026-000123" + new string(' ', 150) + "x",
    ];

    [Test]
    public async Task Search_WithHostileQueries_FindsExactlyWhatASubstringSearchFinds_NeverAnError()
    {
        var timings = new List<string>();
        foreach (var q in HostileQueries)
        {
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            List<Guid> found;
            try
            {
                found = await SearchAsync(q);
            }
            catch (Exception e)
            {
                Assert.Fail($"q = [{Visible(q)}]: {e.GetType().Name}: {e.Message}");
                throw;
            }

            timings.Add($"{System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds:F0} ms [{Visible(q)[..Math.Min(24, Visible(q).Length)]}]");
            Assert.That(found, Is.EqualTo(Substring(q.Trim()).Reverse()), $"q = [{Visible(q)}], newest first");
        }

        // Printed for the review (no timed assertion): the slowest of them.
        TestContext.Out.WriteLine(provider + ": " + string.Join("; ", timings.OrderByDescending(t => double.Parse(t[..t.IndexOf(' ')], System.Globalization.CultureInfo.InvariantCulture)).Take(5)));
    }

    [TestCase("a\0b")]
    [TestCase("\0")]
    public void Search_WithANul_IsRefusedWithAMessage(string q) =>
        Assert.That(() => TaskFilter.Parse(n => n == "q" ? q : null, T0), Throws.InstanceOf<FilterException>().With.Message.Contains("NUL"));

    [Test]
    public async Task Search_WithALoneSurrogate_IsRefusedWithAMessage_NotAnEncoderError()
    {
        // No request or command line carries one (their text is decoded from UTF-8); a caller's string can (not an attribute's
        // argument: stored as UTF-8, it arrives as U+FFFD). PostgreSQL's Npgsql could not encode it: an EncoderFallbackException
        // out of the query, not an answer.
        foreach (var q in new[] { "\uD800", "x\uDC00y", "ab\uD83D", "\uDE00\uD83D" })
        {
            Assert.That(() => TaskFilter.Parse(n => n == "q" ? q : null, T0),
                Throws.InstanceOf<FilterException>().With.Message.Contains("lone surrogate").And.Message.Contains("U+D"), Visible(q));
        }

        Assert.That(await SearchAsync("\uD83D\uDE00"), Is.Empty, "a pair is text: searched, found nowhere");
    }

    [Test]
    public void Search_LongerThanItsLimit_IsRefusedWithAMessage() =>
        Assert.That(() => TaskFilter.Parse(n => n == "q" ? new string('a', 10_000) : null, T0), Throws.InstanceOf<FilterException>().With.Message.Contains("at most 200"));

    private static string Visible(string q) => string.Concat(q.Select(c => c < ' ' || char.IsSurrogate(c) || c is >= '\u200E' and <= '\u206F' || c == '\uFEFF' ? $"\\u{(int)c:X4}" : c.ToString()));

    [TestCase(false)]
    [TestCase(true)]
    public async Task Search_WithRepeatedRunErrors_ThroughDeletesAndChangesOfSingleRuns_FindsExactlyWhatASubstringSearchFinds(bool stepAfterEachChange)
    {
        // Retries of one exception: the same text in several runs of a task (SQLite indexes it once per task).
        const string Declined = "System.InvalidOperationException: Card declined (NEAR) 100%\n   at Pay.Consume() in Pay.cs:line 9";
        foreach (var (task, errors) in new[] { (_tasks[0], new[] { Declined, Declined, Declined }), (_tasks[3], new[] { Declined, "timeout after 9 s", Declined }) })
        {
            foreach (var error in errors)
            {
                task.Runs.Add(Run(task.Id, error, TaskRunState.Retried));
            }
        }

        await _host.QueryAsync(db =>
        {
            db.AddRange(_tasks[0].Runs.Concat(_tasks[3].Runs));
            return db.SaveChangesAsync();
        });
        await IndexPendingAsync();
        string[] queries = ["card declined", "(NEAR) 100%", "Pay.cs:line", "timeout", "declined (near", "zzz-not-there", "NEAR", "0%"];

        async Task AssertExactAsync(string after)
        {
            if (stepAfterEachChange)
            {
                await IndexPendingAsync();
            }

            foreach (var q in queries)
            {
                Assert.That(await SearchAsync(q), Is.EquivalentTo(Substring(q)), $"q = [{q}] after {after}");
            }
        }

        await AssertExactAsync("the runs were written");
        var changes = new (string What, TaskRunLog Run, string? Error)[]
        {
            ("the first of three identical errors deleted", _tasks[0].Runs[0], null),
            ("the first of a repeated pair changed", _tasks[3].Runs[0], "gateway refused ORD-X-1"),
            ("the second of the pair takes the changed text", _tasks[3].Runs[2], "gateway refused ORD-X-1"),
            ("the run with the changed text deleted", _tasks[3].Runs[0], null),
            ("a middle run deleted", _tasks[3].Runs[1], null),
            ("the next of the identical errors deleted", _tasks[0].Runs[0], null),
        };
        foreach (var (what, run, error) in changes)
        {
            await _host.QueryAsync(db => error is null
                ? db.TaskRunLogs.Where(r => r.Id == run.Id).ExecuteDeleteAsync()
                : db.TaskRunLogs.Where(r => r.Id == run.Id).ExecuteUpdateAsync(s => s.SetProperty(r => r.ErrorMessage, error)));
            var task = _tasks.Single(t => t.Id == run.TaskId);
            if (error is null)
            {
                task.Runs.Remove(run);
            }
            else
            {
                run.ErrorMessage = error;
            }

            await AssertExactAsync(what);
        }

        // Retention: the tasks' runs all go.
        await _host.QueryAsync(db => db.TaskRunLogs.Where(r => r.TaskId == _tasks[0].Id || r.TaskId == _tasks[3].Id).ExecuteDeleteAsync());
        _tasks[0].Runs.Clear();
        _tasks[3].Runs.Clear();
        await AssertExactAsync("every run of both tasks deleted");
    }

    [Test]
    public async Task Search_FindsSomethingForMostQueries_SoTheEquivalenceIsNotVacuous()
    {
        var matching = Queries.Count(q => Substring(q.Trim()).Any());

        Assert.That(matching, Is.GreaterThanOrEqualTo(Queries.Length * 3 / 4), "most queries find a task");
        Assert.That(await SearchAsync("y*z"), Is.EqualTo(new[] { _tasks[2].Id }));
        Assert.That(await SearchAsync("gateway DID"), Is.EqualTo(new[] { _tasks[1].Id }));
        Assert.That(await SearchAsync("\"db\""), Is.EqualTo(new[] { _tasks[4].Id }));
        Assert.That(await SearchAsync("kw4"), Is.EqualTo(new[] { _tasks[4].Id }));
    }

    [Test]
    public async Task Search_KeepsTheListOrder_AndPages()
    {
        await using var scope = _host.Services.CreateAsyncScope();
        var queries = scope.ServiceProvider.GetRequiredService<LedgerQueries>();
        var first = await queries.TasksAsync(TaskFilter.Parse(n => n switch { "q" => "ord-2026", "limit" => "2", _ => null }, T0), CancellationToken.None);
        var second = await queries.TasksAsync(
            TaskFilter.Parse(n => n switch { "q" => "ord-2026", "limit" => "2", "cursor" => first.NextCursor, _ => null }, T0), CancellationToken.None);

        Assert.That(first.Items.Select(t => t.Id), Is.EqualTo(new[] { _tasks[2].Id, _tasks[1].Id }));
        Assert.That(second.Items.Select(t => t.Id), Is.EqualTo(new[] { _tasks[0].Id }));
        Assert.That(second.NextCursor, Is.Null);
    }

    [TestCase("D")]
    [TestCase("N")]
    [TestCase("B")]
    [TestCase("P")]
    [TestCase("X")]
    [TestCase("urn")]
    public async Task Search_ByAnId_FindsTheTaskCarryingIt(string format)
    {
        string Text(Guid id) => format == "urn" ? "urn:uuid:" + id : id.ToString(format).ToUpperInvariant();
        var task = _tasks[3];
        var run = _tasks[1].Runs[0];

        Assert.That(await SearchAsync(Text(task.Id)), Is.EqualTo(new[] { task.Id }), "the task id (MessageId)");
        Assert.That(await SearchAsync(Text(task.CorrelationId!.Value)), Is.EqualTo(new[] { task.Id }), "CorrelationId");
        Assert.That(await SearchAsync(Text(task.ConversationId!.Value)), Is.EqualTo(new[] { task.Id }), "ConversationId");
        Assert.That(await SearchAsync(Text(run.Id)), Is.EqualTo(new[] { _tasks[1].Id }), "a run's id");
        Assert.That(await SearchAsync(Text(Guid.NewGuid())), Is.Empty);
    }

    /// <summary>
    /// Ids are matched whole (docs/search.md): a part of one, the eight hex digits the dashboard's list shows or the
    /// first group, finds a task only where its text holds it as typed.
    /// </summary>
    [Test]
    public async Task Search_ByAPartOfAnId_FindsNoTaskByItsId()
    {
        var task = _tasks[3];
        var d = task.Id.ToString("D");
        string[] parts = [string.Concat(d.AsSpan(19, 4), d.AsSpan(32, 4)), d[..8], task.Id.ToString("N")[..31], task.TraceId![..31]];

        foreach (var part in parts)
        {
            Assert.That(Substring(part), Is.Empty, $"[{part}] is in no task's text");
            Assert.That(await SearchAsync(part), Is.Empty, $"q = [{part}]");
        }
    }

    /// <summary>A match never spans the end of Input and the start of TaskKwargs (docs/search.md, "Within one column").</summary>
    [Test]
    public async Task Search_NeverMatchesAcrossTheJointOfInputAndTaskKwargs()
    {
        var task = _tasks[0];
        var joint = task.Input![^4..] + task.TaskKwargs![..4];

        Assert.That(await SearchAsync(task.Input[^4..]), Does.Contain(task.Id), "the end of Input alone");
        Assert.That(await SearchAsync(task.TaskKwargs[..4]), Does.Contain(task.Id), "the start of TaskKwargs alone");
        Assert.That(await SearchAsync(joint), Is.Empty, $"q = [{joint}]");
        Assert.That(await SearchAsync(joint, window: 100), Is.Empty, $"q = [{joint}], the newest rows one by one");
    }

    [Test]
    public async Task Search_ByATraceId_FindsTheTask_AlsoFromATraceparent()
    {
        var task = _tasks[5];

        Assert.That(await SearchAsync(task.TraceId!.ToUpperInvariant()), Is.EqualTo(new[] { task.Id }));
        Assert.That(await SearchAsync($"00-{task.TraceId}-00f067aa0ba902b7-01"), Is.EqualTo(new[] { task.Id }));
    }

    [Test]
    public async Task Search_ByAnIdWrittenInTheInput_FindsThatTaskToo()
    {
        var referenced = Guid.NewGuid();
        var mentioning = new TaskLog { Id = Guid.NewGuid(), Name = "Mentions", DispatchedAt = T0, Input = $"Cancel(OrderId={referenced})" };
        var carrying = new TaskLog { Id = Guid.NewGuid(), Name = "Carries", DispatchedAt = T0.AddSeconds(1), CorrelationId = referenced };
        await _host.QueryAsync(db =>
        {
            db.AddRange(mentioning, carrying);
            return db.SaveChangesAsync();
        });

        Assert.That(await SearchAsync(referenced.ToString()), Is.EquivalentTo(new[] { mentioning.Id, carrying.Id }));
        Assert.That(await SearchAsync(referenced.ToString("N")), Is.EqualTo(new[] { carrying.Id }), "the text as typed is a substring of no input");
    }

    [Test]
    public async Task TheTextIndexes_AreThere_AndTheDatabaseUsesThem()
    {
        var plan = await _host.QueryAsync(async db =>
        {
            var connection = db.Database.GetDbConnection();
            await connection.OpenAsync();
            await using var command = connection.CreateCommand();
            if (provider == LedgerProvider.Sqlite)
            {
                command.CommandText = "EXPLAIN QUERY PLAN SELECT rowid FROM \"JobLogTaskText\" WHERE \"JobLogTaskText\" MATCH '\"order\"'";
            }
            else
            {
                command.CommandText = "SET enable_seqscan = off; EXPLAIN SELECT \"TaskId\" FROM \"JobLogSearchText\" WHERE \"Text\" ILIKE '%order%'";
            }

            var lines = new List<string>();
            await using var reader = await command.ExecuteReaderAsync();
            do
            {
                while (await reader.ReadAsync())
                {
                    lines.Add(reader.GetValue(reader.FieldCount - 1).ToString()!);
                }
            }
            while (await reader.NextResultAsync());

            return string.Join("\n", lines);
        });

        if (provider == LedgerProvider.Sqlite)
        {
            Assert.That(plan, Does.Contain("VIRTUAL TABLE INDEX"));
        }
        else
        {
            Assert.That(plan, Does.Contain("IX_JobLogSearchText_Trigram"));
        }
    }

    /// <summary>How many of the search's index objects the ledger has (SQLite: the two FTS5 tables; PostgreSQL: the side table, its GIN index and the swept runs' index).</summary>
    private Task<int> SearchIndexObjectsAsync() => _host.QueryAsync(db => provider == LedgerProvider.Sqlite
        ? db.Database.SqlQueryRaw<int>(
            "SELECT COUNT(*) AS \"Value\" FROM sqlite_master WHERE type = 'table' AND name IN ('JobLogTaskText', 'JobLogRunText')").SingleAsync()
        : db.Database.SqlQueryRaw<int>(JobLog.Storage.PostgreSql.PostgreSqlSearch.CountPresent).SingleAsync());

    private Task ApplySearchIndexAsync(bool enabled) => _host.QueryAsync(async db =>
    {
        await _host.Services.GetRequiredService<LedgerDatabase>().ApplySearchIndexAsync(db, enabled, CancellationToken.None);
        return 0;
    });

    [Test]
    public async Task Search_FindsATaskStillWaitingForItsConsumer()
    {
        // PostgreSQL's text index leaves Waiting rows out (the dispatch's row version): they are searched apart.
        var waiting = new TaskLog { Id = Guid.NewGuid(), Name = "Waiting", DispatchedAt = T0.AddHours(2), State = TaskState.Waiting, Input = "not consumed yet: ORD-WAIT-42", TaskKwargs = "{\"OrderId\": \"ORD-WAIT-42\"}" };
        await _host.QueryAsync(db =>
        {
            db.Add(waiting);
            return db.SaveChangesAsync();
        });
        _tasks.Add(waiting);

        Assert.That(await SearchAsync("ORD-WAIT-42"), Is.EqualTo(new[] { waiting.Id }));
        Assert.That(await SearchAsync("ord-20"), Is.EquivalentTo(Substring("ord-20")), "the other tasks as before");
    }

    [Test]
    public async Task PostgreSql_ALedgerWithTheFormerIndexesOnTheRows_GetsTheSideTable_AndOffDropsThemAll()
    {
        Assume.That(provider, Is.EqualTo(LedgerProvider.PostgreSql));
        // A ledger of session 8 and before: the trigram indexes on the tasks and runs (the per-column ones of session 6
        // too), no side table: start-up moves the text of the rows already there into it.
        var former = JobLog.Storage.PostgreSql.PostgreSqlSearch.Drop + """

            CREATE INDEX "IX_JobLogTasks_Input_Trigram" ON "JobLogTasks" USING gin ("Input" gin_trgm_ops) WHERE "Input" IS NOT NULL;
            CREATE INDEX "IX_JobLogTasks_TaskKwargs_Trigram" ON "JobLogTasks" USING gin ("TaskKwargs" gin_trgm_ops) WHERE "TaskKwargs" IS NOT NULL;
            CREATE INDEX "IX_JobLogTaskRuns_ErrorMessage_Trigram" ON "JobLogTaskRuns" USING gin ("ErrorMessage" gin_trgm_ops) WHERE "ErrorMessage" IS NOT NULL;
            """;
        // The tasks' search indexes only: the requests' and commands' own trigram indexes (PostgreSqlLogSearch) stay.
        const string Names = "SELECT string_agg(indexname, ',' ORDER BY indexname) AS \"Value\" FROM pg_indexes WHERE indexname LIKE '%Trigram' AND tablename IN ('JobLogTasks', 'JobLogTaskRuns', 'JobLogSearchText')";
        await _host.QueryAsync(db => db.Database.ExecuteSqlRawAsync(former));
        Assert.That(await SearchIndexObjectsAsync(), Is.Zero);
        Assert.That(await _host.QueryAsync(db => db.Database.SqlQueryRaw<string>(Names).SingleAsync()),
            Is.EqualTo("IX_JobLogTaskRuns_ErrorMessage_Trigram,IX_JobLogTasks_Input_Trigram,IX_JobLogTasks_TaskKwargs_Trigram"));

        await ApplySearchIndexAsync(enabled: true);
        Assert.That(await _host.QueryAsync(db => db.Database.SqlQueryRaw<string>(Names).SingleAsync()),
            Is.EqualTo("IX_JobLogSearchText_Trigram"), "start-up replaces the indexes on the rows by the side table's");
        foreach (var q in new[] { "ORD-2026-000123", "timeout", "order" })
        {
            Assert.That(await SearchAsync(q), Is.EquivalentTo(Substring(q)), $"q = [{q}]: the text already there was moved");
        }

        await _host.QueryAsync(db => db.Database.ExecuteSqlRawAsync(former));
        await ApplySearchIndexAsync(enabled: false);
        Assert.That(await SearchIndexObjectsAsync(), Is.Zero);
        Assert.That(await _host.QueryAsync(db => db.Database.SqlQueryRaw<string?>(Names).SingleAsync()), Is.Null, "off drops the former ones too");
    }

    [Test]
    public async Task PostgreSql_WithoutTheTrigramIndex_AsWithoutPgTrgm_SearchScansTheSideTable_AndFindsTheSameRows()
    {
        Assume.That(provider, Is.EqualTo(LedgerProvider.PostgreSql));
        // Without pg_trgm the migration leaves the side table without its trigram index (a WARNING): the search scans it.
        await _host.QueryAsync(db => db.Database.ExecuteSqlRawAsync("DROP INDEX \"IX_JobLogSearchText_Trigram\""));
        Assert.That(await SearchIndexObjectsAsync(), Is.EqualTo(JobLog.Storage.PostgreSql.PostgreSqlSearch.PresentCount - 1), "the side table and the swept runs' index");
        foreach (var q in new[] { "ORD-2026-000123", "timeout", "order", "rderId=" })
        {
            Assert.That(await SearchAsync(q), Is.EquivalentTo(Substring(q)), $"q = [{q}] by scanning the side table");
        }
    }

    [Test]
    public async Task SearchIndexOff_DropsTheIndex_SearchStillFindsTheSameRows_AndOnAgainRebuildsItFromTheRows()
    {
        var expected = provider == LedgerProvider.PostgreSql ? JobLog.Storage.PostgreSql.PostgreSqlSearch.PresentCount : 2;
        Assert.That(await SearchIndexObjectsAsync(), Is.EqualTo(expected), "the default keeps the index");

        await ApplySearchIndexAsync(enabled: false);
        Assert.That(await SearchIndexObjectsAsync(), Is.Zero);
        var late = new TaskLog { Id = Guid.NewGuid(), Name = "Late", DispatchedAt = T0.AddHours(1), State = TaskState.Succeeded, Input = "written while the index was off: ORD-LATE-77" };
        await _host.QueryAsync(db =>
        {
            db.Add(late);
            return db.SaveChangesAsync();
        });
        _tasks.Add(late);
        foreach (var q in new[] { "ORD-2026-000123", "ORD-LATE-77", "timeout", "(NEAR)", "failure group", "Charge bounced" })
        {
            Assert.That(await SearchAsync(q, searchIndex: false), Is.EquivalentTo(Substring(q)), $"q = [{q}] without the index");
        }

        await ApplySearchIndexAsync(enabled: true);
        Assert.That(await SearchIndexObjectsAsync(), Is.EqualTo(expected), "on again, start-up rebuilds the index");
        Assert.That(await SearchAsync("ORD-LATE-77"), Is.EqualTo(new[] { late.Id }), "a row written while it was off is in the rebuilt index");
        Assert.That(await SearchAsync("ORD-2026-000123"), Is.EquivalentTo(Substring("ORD-2026-000123")));
    }

    [Test]
    public async Task Search_FollowsChangesAndDeletes_OfTheIndexedColumns()
    {
        await _host.QueryAsync(async db =>
        {
            await db.TaskLogs.Where(t => t.Id == _tasks[0].Id).ExecuteUpdateAsync(s => s.SetProperty(t => t.Input, "Replaced(Quux=1)"));
            await db.TaskRunLogs.Where(r => r.TaskId == _tasks[6].Id).ExecuteUpdateAsync(s => s.SetProperty(r => r.ErrorMessage, "disk full"));
            await db.TaskRunLogs.Where(r => r.TaskId == _tasks[4].Id).ExecuteDeleteAsync();
            // A state change alone leaves the indexed text as it was.
            await db.TaskLogs.Where(t => t.Id == _tasks[1].Id).ExecuteUpdateAsync(s => s.SetProperty(t => t.State, TaskState.Failed));
            return await db.TaskLogs.Where(t => t.Id == _tasks[2].Id).ExecuteDeleteAsync();
        });

        Assert.That(await SearchAsync("quux"), Is.EqualTo(new[] { _tasks[0].Id }));
        Assert.That(await SearchAsync("ORD-2026-000123"), Is.Empty, "task 0's old input and the deleted task 2");
        Assert.That(await SearchAsync("disk full"), Is.EqualTo(new[] { _tasks[6].Id }));
        Assert.That(await SearchAsync("timeout"), Is.EqualTo(new[] { _tasks[1].Id }));
        Assert.That(await SearchAsync("refused"), Is.Empty);
        Assert.That(await SearchAsync("000124"), Is.EqualTo(new[] { _tasks[1].Id }));
    }

    [Test]
    public async Task Search_FindsWhatTheWriterRecorded_ProducerFieldsArrivingAfterTheRun()
    {
        var recorder = _host.Services.GetRequiredService<LedgerRecorder>();
        var id = Guid.NewGuid();
        var run = new RunPayload { Id = Guid.NewGuid(), TaskId = id, Name = "Pay", ConsumerType = "PayConsumer", Start = T0, Host = "test" };
        var seed = new TaskPayload { Id = id, Name = "Pay", Input = "Pay(Seed)", TaskKwargs = "{}", DispatchedAt = T0, Host = "test" };
        recorder.Enqueue(new RunStarted(run, seed, false));
        recorder.Enqueue(new RunFinished(run.Id, id, TaskRunState.Failed, T0.AddSeconds(1), "InvalidOperationException: card declined", null, null));
        await _host.FlushAsync();
        recorder.Enqueue(new TaskDispatched(seed with { Input = "Pay(Invoice=INV-778899)", TaskKwargs = "{\"Invoice\": \"INV-778899\"}" }));
        await _host.FlushAsync();

        Assert.That(await SearchAsync("inv-7788"), Is.EqualTo(new[] { id }));
        Assert.That(await SearchAsync("card declined"), Is.EqualTo(new[] { id }));
        Assert.That(await SearchAsync("Pay(Seed)"), Is.Empty);
    }
}
