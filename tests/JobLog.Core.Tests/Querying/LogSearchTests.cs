using JobLog.Querying;
using JobLog.Recording;
using JobLog.Storage;
using JobLog.Storage.PostgreSql;
using JobLog.Storage.Sqlite;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace JobLog.Core.Tests.Querying;

/// <summary>
/// The request and command lists' <c>q</c> (session 13): through the trigram indexes of the requests' <c>Path</c> and the
/// commands' <c>Input</c> (SQLite FTS5 up to a watermark, PostgreSQL GIN, partitioned or not) it finds exactly the rows
/// the former substring scan finds, hostile and short texts included; a ledger filled without the index gets it at
/// start-up; retention keeps the SQLite index in step.
/// </summary>
[TestFixture(LedgerProvider.Sqlite, false)]
[TestFixture(LedgerProvider.PostgreSql, false)]
[TestFixture(LedgerProvider.PostgreSql, true)]
public class LogSearchTests(LedgerProvider provider, bool partitioned)
{
    private static readonly DateTime T0 = new(2026, 3, 10, 12, 0, 0, DateTimeKind.Utc);

    private static readonly string[] Paths =
    [
        "/api/orders/ORD-2026-000123", "/api/orders/ORD-2026-000124", "/api/customers/4242/cart", "/api/customers/42420",
        "/health", "/a", "/100%_off\\x", "/say \"hi\" (NEAR) -x: y*z", "/ab", "/api/customers/14242",
    ];

    private static readonly string?[] Arguments =
    [
        "--batch 50000", "--batch 500001 --dry-run", "--file C:\\in\\x_1.csv", null, "ab", "--name \"quoted\" 100%", "--batch 4242",
        "-x: y*z (NEAR)",
    ];

    private static readonly string[] Queries =
    [
        "ORD-2026-000123", "ord-2026", "000124", "/api/customers/4242", "4242", "customers", "/api", "zzz-not-there", "\"", "\"hi\"",
        "(NEAR)", "NEAR", "-x:", "y*z", "*", "100%", "%", "_", "\\", "\\in\\", "ab", "b", "a", "/", "--batch 50000", "50000",
        "--batch", "dry", "ORD", "OR", "x_1", "quoted\" 1",
    ];

    private readonly List<(Guid Id, string Path)> _inputs = [];
    private readonly List<(Guid Id, string Path)> _outputs = [];
    private readonly List<(Guid Id, string? Input)> _commands = [];
    private TestLedger _ledger = null!;
    private LedgerHost _host = null!;
    private FakeTimeProvider _clock = null!;

    [SetUp]
    public async Task SetUp()
    {
        _inputs.Clear();
        _outputs.Clear();
        _commands.Clear();
        _clock = new FakeTimeProvider(new DateTimeOffset(T0));
        _ledger = await Ledgers.CreateAsync(provider);
        _host = await StartAsync(searchIndex: true);
    }

    [TearDown]
    public async Task TearDown() => await _host.DisposeAsync();

    private async Task<LedgerHost> StartAsync(bool searchIndex)
    {
        var host = await LedgerHost.StartAsync(_ledger, o =>
        {
            o.SearchIndex = searchIndex;
            o.Partitioning.Enabled = partitioned;
        }, services: s => s.AddSingleton<TimeProvider>(_clock));
        if (partitioned)
        {
            await using var connection = new Npgsql.NpgsqlConnection(_ledger.ConnectionString);
            await connection.OpenAsync();
            await JobLog.Storage.Partitioning.LedgerPartitioning.EnsureAheadAsync(connection, T0.AddDays(-2), 1, CancellationToken.None);
        }

        return host;
    }

    /// <summary>Records half the rows of each log (from <paramref name="from"/>, every other one) through the writer.</summary>
    private async Task WriteAsync(LedgerHost host, int from)
    {
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        for (var i = from; i < Paths.Length; i += 2)
        {
            // A day before T0 and T0's day: on a partitioned ledger the rows are in two day partitions.
            var at = T0.AddDays(-(i % 2)).AddMinutes(i);
            var input = new InputRequestPayload { Id = Guid.CreateVersion7(at), Host = "shop.test", Method = "GET", Path = Paths[i], RequestTimestamp = at };
            recorder.Enqueue(new InputRequestRecorded(input));
            recorder.Enqueue(new InputRequestRecorded(input with { ResponseTimestamp = at.AddSeconds(1), ResponseCode = 200, Status = RequestLogStatus.Info }));
            _inputs.Add((input.Id, input.Path));
            var output = new OutputRequestPayload
            {
                Id = Guid.CreateVersion7(at.AddSeconds(2)), Host = "psp.test", Method = "POST", Path = Paths[Paths.Length - 1 - i], RequestTimestamp = at.AddSeconds(2),
            };
            recorder.Enqueue(new OutputRequestRecorded(output));
            _outputs.Add((output.Id, output.Path));
        }

        for (var i = from; i < Arguments.Length; i += 2)
        {
            var at = T0.AddDays(-(i % 2)).AddMinutes(i);
            var command = new CommandPayload { Id = Guid.CreateVersion7(at), Name = "import", Input = Arguments[i], Start = at };
            recorder.Enqueue(new CommandRecorded(command));
            recorder.Enqueue(new CommandRecorded(command with { Stop = at.AddSeconds(3), IsSuccessful = true, ExitCode = 0 }));
            _commands.Add((command.Id, command.Input));
        }

        await host.FlushAsync();
    }

    /// <summary>SQLite: the index's bulk step (the rows past the watermark indexed), as the writer takes it every 4,000 rows.</summary>
    private Task IndexPendingAsync(LedgerHost host) => provider != LedgerProvider.Sqlite ? Task.CompletedTask : host.QueryAsync(async db =>
    {
        await using var transaction = await db.Database.BeginTransactionAsync();
        await db.Database.ExecuteSqlRawAsync(SqliteLogSearch.IndexPending);
        await transaction.CommitAsync();
        return 0;
    });

    private static bool Has(string? text, string q) => text?.Contains(q, StringComparison.OrdinalIgnoreCase) == true;

    private enum Log
    {
        Inbound,
        Outbound,
        Commands,
    }

    /// <summary>What the substring search finds, computed in memory (ASCII text: LIKE and ILIKE fold the same case).</summary>
    private List<Guid> Expected(Log log, string q) => (log switch
    {
        Log.Inbound => _inputs.Where(r => Has(r.Path, q)).Select(r => r.Id),
        Log.Outbound => _outputs.Where(r => Has(r.Path, q)).Select(r => r.Id),
        _ => _commands.Where(c => Has(c.Input, q)).Select(c => c.Id),
    }).Order().ToList();

    /// <summary>Every page of the list's search, followed by cursor; <paramref name="window"/> 0 goes straight to the index.</summary>
    private async Task<List<Guid>> SearchAsync(LedgerHost host, Log log, string q, int window, int limit, bool searchIndex = true)
    {
        await using var scope = host.Services.CreateAsyncScope();
        var queries = searchIndex
            ? scope.ServiceProvider.GetRequiredService<LedgerQueries>()
            : new LedgerQueries(scope.ServiceProvider.GetRequiredService<JobLogDbContext>(), scope.ServiceProvider.GetRequiredService<LedgerDatabase>(), searchIndex: false);
        queries.SearchWindow = window;
        var found = new List<Guid>();
        string? cursor = null;
        do
        {
            string? Value(string n) => n switch { "q" => q, "limit" => limit.ToString(System.Globalization.CultureInfo.InvariantCulture), "cursor" => cursor, _ => null };
            var (ids, next) = log switch
            {
                Log.Inbound => await Ids(queries.InputRequestsAsync(RequestFilter.Parse(Value, T0), CancellationToken.None)),
                Log.Outbound => await Ids(queries.OutputRequestsAsync(RequestFilter.Parse(Value, T0), CancellationToken.None)),
                _ => await Ids(queries.CommandsAsync(CommandFilter.Parse(Value, T0), CancellationToken.None)),
            };
            found.AddRange(ids);
            cursor = next;
        }
        while (cursor is not null);

        return found;
    }

    private static async Task<(List<Guid>, string?)> Ids(Task<Page<RequestRow>> page) => (await page) is var p ? (p.Items.Select(r => r.Id).ToList(), p.NextCursor) : default;

    private static async Task<(List<Guid>, string?)> Ids(Task<Page<CommandRow>> page) => (await page) is var p ? (p.Items.Select(r => r.Id).ToList(), p.NextCursor) : default;

    private async Task AssertEveryQueryFindsWhatASubstringSearchFinds(LedgerHost host)
    {
        foreach (var log in Enum.GetValues<Log>())
        {
            foreach (var q in Queries)
            {
                var expected = Expected(log, q);
                foreach (var (window, limit, index) in new[] { (0, 500, true), (2, 1, true), (0, 2, true), (0, 500, false) })
                {
                    var found = await SearchAsync(host, log, q, window, limit, index);
                    Assert.That(found, Is.Unique, $"{log} q={q} window={window} limit={limit} index={index}");
                    Assert.That(found.Order().ToList(), Is.EqualTo(expected), $"{log} q={q} window={window} limit={limit} index={index}");
                }
            }
        }
    }

    [Test]
    public async Task Search_WithRowsIndexedAndRowsPastTheWatermark_FindsExactlyWhatASubstringSearchFinds()
    {
        await WriteAsync(_host, 0);
        await IndexPendingAsync(_host);
        await WriteAsync(_host, 1);
        await AssertEveryQueryFindsWhatASubstringSearchFinds(_host);
        await IndexPendingAsync(_host);
        await AssertEveryQueryFindsWhatASubstringSearchFinds(_host);
    }

    [Test]
    public async Task ALedgerFilledWithoutTheIndex_GetsItAtStartUp_AndFindsWhatItFoundBefore()
    {
        await _host.Host.StopAsync();
        _host.Host.Dispose();
        _host = await StartAsync(searchIndex: false);
        Assert.That(await IndexesAsync(_host), Is.Zero, "the search index off: no index of the logs");
        await WriteAsync(_host, 0);
        await WriteAsync(_host, 1);
        await _host.Host.StopAsync();
        _host.Host.Dispose();

        _host = await StartAsync(searchIndex: true);
        Assert.That(await IndexesAsync(_host), Is.EqualTo(provider == LedgerProvider.Sqlite ? _inputs.Count + _outputs.Count + _commands.Count(c => c.Input is not null) : 3));
        if (partitioned)
        {
            // Every day partition of the three logs has its trigram index (the parent's).
            var missing = await _host.QueryAsync(db => db.Database.SqlQueryRaw<int>("""
                SELECT COUNT(*)::int AS "Value" FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
                WHERE p.relname IN ('JobLogInputRequests', 'JobLogOutputRequests', 'JobLogCommands')
                    AND NOT EXISTS (SELECT 1 FROM pg_indexes x WHERE x.tablename = c.relname AND x.indexdef LIKE '%gin_trgm_ops%')
                """).SingleAsync());
            Assert.That(missing, Is.Zero, "partitions without the trigram index");
        }

        await AssertEveryQueryFindsWhatASubstringSearchFinds(_host);
    }

    [Test]
    public async Task Retention_KeepsTheIndexInStep()
    {
        await WriteAsync(_host, 0);
        await WriteAsync(_host, 1);
        await IndexPendingAsync(_host);
        var before = await IndexesAsync(_host);
        var gone = _inputs.Where(r => r.Path.Contains("4242", StringComparison.Ordinal)).Select(r => r.Id).ToList();
        var goneCommands = _commands.Where(c => c.Input?.Contains("batch", StringComparison.Ordinal) == true).Select(c => c.Id).ToList();
        await _host.QueryAsync(db => db.InputRequestLogs.Where(r => gone.Contains(r.Id)).ExecuteDeleteAsync());
        await _host.QueryAsync(db => db.CommandLogs.Where(c => goneCommands.Contains(c.Id)).ExecuteDeleteAsync());
        _inputs.RemoveAll(r => gone.Contains(r.Id));
        _commands.RemoveAll(c => goneCommands.Contains(c.Id));
        if (provider == LedgerProvider.Sqlite)
        {
            Assert.That(await IndexesAsync(_host), Is.EqualTo(before - gone.Count - goneCommands.Count), "the deleted rows' index entries");
        }

        await AssertEveryQueryFindsWhatASubstringSearchFinds(_host);
    }

    /// <summary>SQLite: the entries of the three FTS5 tables; PostgreSQL: the trigram indexes of the logs (on the parents).</summary>
    private Task<int> IndexesAsync(LedgerHost host) => host.QueryAsync(async db =>
    {
        if (provider != LedgerProvider.Sqlite)
        {
            return await db.Database.SqlQueryRaw<int>(PostgreSqlLogSearch.CountPresent).SingleAsync();
        }

        if (await db.Database.SqlQueryRaw<int>(SqliteLogSearch.Present).SingleAsync() == 0)
        {
            return 0;
        }

        var total = 0;
        foreach (var log in LogText.All)
        {
            var sql = "SELECT COUNT(*) AS \"Value\" FROM \"" + SqliteLogSearch.TextTable(log) + "\"";
            total += await db.Database.SqlQueryRaw<int>(sql).SingleAsync();
        }

        return total;
    });
}
