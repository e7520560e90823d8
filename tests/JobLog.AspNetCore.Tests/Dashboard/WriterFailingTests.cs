using System.Text.Json;
using JobLog.Recording;
using JobLog.Testing;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using NUnit.Framework;

namespace JobLog.AspNetCore.Tests.Dashboard;

/// <summary>
/// Session 33 (session 32's "found, not fixed"): while the ledger answers reads and refuses writes (its disk full, or
/// read-only as here), the dashboard's overview showed this process's writer as failing ("DATABASE UNREACHABLE") without
/// the error, which only the writer's health check named. The overview page and <c>api/overview</c> now say why and since
/// when.
/// </summary>
[NonParallelizable]
public class WriterFailingTests
{
    [Test]
    [CancelAfter(180_000)]
    public async Task LedgerReadOnly_TheOverviewShowsTheWritersErrorAndSinceWhen_ThenNothingOnceItWritesAgain()
    {
        await using var ledger = await TestLedger.PostgresAsync();
        await using var host = await DashboardHost.StartAsync(ledger);
        var database = new NpgsqlConnectionStringBuilder(ledger.ConnectionString).Database;
        await using var admin = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(ledger.ConnectionString) { Database = "postgres", Pooling = false }.ConnectionString);
        await admin.OpenAsync();
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var before = DateTime.UtcNow;
        try
        {
            // New sessions to the ledger are read-only; the ones open (the writer's) are ended, so the writer's next one is too.
            await ExecuteAsync(admin, $"ALTER DATABASE \"{database}\" SET default_transaction_read_only = on");
            await ExecuteAsync(admin, $"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}' AND pid <> pg_backend_pid()");

            // Records to write, and the overview asked, until the writer fails on the read-only ledger (its attempt on the
            // ended session first fails otherwise) or a minute passes.
            JsonElement writer;
            var clock = System.Diagnostics.Stopwatch.StartNew();
            do
            {
                recorder.Enqueue(new TaskDispatched(new TaskPayload { Id = Guid.NewGuid(), Name = "T", DispatchedAt = DateTime.UtcNow }));
                await Task.Delay(500);
                using var overview = JsonDocument.Parse(await host.GetStringAsync("/joblog/api/overview"));
                writer = overview.RootElement.GetProperty("writer").Clone();
            }
            while (!(writer.GetProperty("failing").GetBoolean() && LastError(writer)?.Contains("25006", StringComparison.Ordinal) == true) && clock.Elapsed < TimeSpan.FromSeconds(60));

            TestContext.Out.WriteLine($"api/overview's writer while the ledger is read-only: {writer}");
            var html = await host.GetStringAsync("/joblog");
            Assert.Multiple(() =>
            {
                Assert.That(writer.GetProperty("failing").GetBoolean(), Is.True, "the writer failing");
                Assert.That(LastError(writer) ?? "(none)", Does.Contain("25006: cannot execute INSERT in a read-only transaction"));
                Assert.That(writer.TryGetProperty("failingSince", out var since) && since.ValueKind == JsonValueKind.String ? since.GetDateTime().ToUniversalTime() : (DateTime?)null,
                    Is.Not.Null.And.InRange(before, DateTime.UtcNow));
                Assert.That(html, Does.Contain("CANNOT WRITE").And.Contain("Failing since").And.Contain("25006: cannot execute INSERT in a read-only transaction"));
            });
        }
        finally
        {
            await ExecuteAsync(admin, $"ALTER DATABASE \"{database}\" RESET default_transaction_read_only");
        }

        // Writable again: the writer catches up, and the overview shows no error.
        await LedgerHost.EventuallyAsync(async () =>
        {
            using var overview = JsonDocument.Parse(await host.GetStringAsync("/joblog/api/overview"));
            var writer = overview.RootElement.GetProperty("writer");
            return !writer.GetProperty("failing").GetBoolean() && writer.GetProperty("lastError").ValueKind == JsonValueKind.Null
                && writer.GetProperty("failingSince").ValueKind == JsonValueKind.Null && recorder.Backlog == 0;
        }, TimeSpan.FromSeconds(90), "the writer writing again, the overview without an error");
        Assert.That(await host.GetStringAsync("/joblog"), Does.Not.Contain("read-only transaction"));
    }

    private static string? LastError(JsonElement writer) =>
        writer.TryGetProperty("lastError", out var e) && e.ValueKind == JsonValueKind.String ? e.GetString() : null;

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }
}
