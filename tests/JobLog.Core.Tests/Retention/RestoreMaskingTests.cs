using System.IO.Compression;
using System.Text.Json;
using JobLog.Maintenance;
using JobLog.Retention;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.Core.Tests.Retention;

/// <summary>
/// A backup is a file anyone can edit, or one written by another ledger with other redaction settings: what it puts
/// back is masked as the recording path masks what it records (RecordMasking), field by field.
/// </summary>
[TestFixture(LedgerProvider.Sqlite)]
[TestFixture(LedgerProvider.PostgreSql)]
public class RestoreMaskingTests(LedgerProvider provider)
{
    private static readonly DateTime T0 = new(2026, 11, 1, 8, 0, 0, DateTimeKind.Utc);
    private LedgerHost _host = null!;
    private string _directory = null!;

    [SetUp]
    public async Task SetUp()
    {
        _directory = Path.Combine(Path.GetTempPath(), "joblog-restore-mask-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_directory);
        _host = await LedgerHost.StartAsync(await Ledgers.CreateAsync(provider));
    }

    [TearDown]
    public async Task TearDown()
    {
        await _host.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    [Test]
    public async Task Restore_OfTasksWithAPasswordInEveryFieldTheRecorderMasks_StoresThemMasked()
    {
        var task = new TaskLog
        {
            Id = Guid.NewGuid(), Name = "ResetPassword", QueueName = "accounts", DispatchedAt = T0, State = TaskState.Failed, Stop = T0.AddSeconds(2),
            Input = "User=ann, Password=Pl4nted-task-input",
            TaskArgs = "[\"ann\",{\"password\":\"Pl4nted-task-args\"}]",
            TaskKwargs = "{\"User\":\"ann\",\"Password\":\"Pl4nted-task-kwargs\"}",
            ExtraData = "{\"progress\":{\"value\":1},\"apiKey\":\"Pl4nted-task-extra\"}",
            ErrorMessage = "Npgsql.NpgsqlException: Host=db;Username=app;Password=Pl4nted-task-error;",
            Runs =
            [
                new TaskRunLog
                {
                    Id = Guid.NewGuid(), Name = "ResetPassword", ConsumerType = "ResetPasswordConsumer", Start = T0, Stop = T0.AddSeconds(2),
                    State = TaskRunState.Failed,
                    Input = "User=ann, Password=Pl4nted-run-input",
                    TaskArgs = "[{\"secret\":\"Pl4nted-run-args\"}]",
                    TaskKwargs = "{\"Credentials\":{\"Password\":\"Pl4nted-run-kwargs\"}}",
                    ErrorMessage = "System.Net.Http.HttpRequestException: 401 for https://ann:Pl4nted-run-error@api.example/reset",
                    Output = "[08:00:01] info Shop.Accounts: calling with password=Pl4nted-run-output",
                },
            ],
        };

        var file = await WriteBackupAsync("tasks", task);
        await RestoreAsync(file);

        var stored = await _host.QueryAsync(db => db.TaskLogs.AsNoTracking().Include(t => t.Runs).SingleAsync(t => t.Id == task.Id));
        AssertNoPlantedSecret(stored);
        Assert.That(stored.Input, Does.StartWith("User=ann, Password="), "the rest of the text is kept");
        Assert.That(stored.Runs.Single().Output, Does.StartWith("[08:00:01] info Shop.Accounts: calling with password="));
    }

    [Test]
    public async Task Restore_OfRequestsWithAPasswordInEveryFieldTheRecorderMasks_StoresThemMasked()
    {
        var inbound = new InputRequestLog
        {
            Id = Guid.NewGuid(), Host = "shop.example", Method = "POST", Path = "/login;jsessionid=Pl4nted-in-path", RequestTimestamp = T0,
            ResponseTimestamp = T0.AddMilliseconds(5), ResponseCode = 500, Status = RequestLogStatus.Error, Ip = "10.0.0.1",
            Queries = "{\"password\":\"Pl4nted-in-query\",\"page\":\"2\"}",
            RequestHeaders = "{\"Authorization\":\"Bearer Pl4nted-in-header-bearer\",\"X-Api-Key\":\"Pl4nted-in-header-key\"}",
            ResponseHeaders = "{\"Set-Cookie\":\"session=Pl4nted-in-cookie; Path=/\"}",
            RequestBody = "user=ann&password=Pl4nted-in-form-body",
            ResponseBody = "{\"token\":\"Pl4nted-in-json-body\"}",
            ErrorDescription = "System.Exception: Server=db;Password=Pl4nted-in-error;",
        };
        var outbound = new OutputRequestLog
        {
            Id = Guid.NewGuid(), Host = "psp.example", Method = "POST", Path = "/v1/charges?api_key=Pl4nted-out-path", RequestTimestamp = T0,
            ResponseTimestamp = T0.AddMilliseconds(5), ResponseCode = 200, Status = RequestLogStatus.Info,
            Queries = "{\"client_secret\":\"Pl4nted-out-query\"}",
            RequestHeaders = "{\"Authorization\":\"Basic Pl4nted-out-header\"}",
            RequestBody = "<charge><password>Pl4nted-out-xml-body</password></charge>",
            ResponseBody = "{\"data\":{\"access_token\":\"Pl4nted-out-json-body\"}}",
        };

        await RestoreAsync(await WriteBackupAsync("input-requests", inbound));
        await RestoreAsync(await WriteBackupAsync("output-requests", outbound));

        AssertNoPlantedSecret(await _host.QueryAsync(db => db.InputRequestLogs.AsNoTracking().SingleAsync(r => r.Id == inbound.Id)));
        var storedOutbound = await _host.QueryAsync(db => db.OutputRequestLogs.AsNoTracking().SingleAsync(r => r.Id == outbound.Id));
        AssertNoPlantedSecret(storedOutbound);
        Assert.That(storedOutbound.Path, Does.StartWith("/v1/charges?api_key="));
    }

    [Test]
    public async Task Restore_OfCommandsWithAPasswordInEveryShapeTheRecorderMasks_StoresThemMasked()
    {
        CommandLog Command(string input) => new()
        {
            Id = Guid.NewGuid(), Name = "import", Start = T0, Stop = T0.AddSeconds(1), IsSuccessful = false, ExitCode = 1,
            Input = input,
            Output = "connecting with Password=Pl4nted-cmd-output;",
            ErrorMessage = "System.Exception: login failed for token=Pl4nted-cmd-error",
        };

        // The shapes CommandArguments masks, as CommandLogger would have stored them had they not been masked.
        var commands = new[]
        {
            Command("--db-password Pl4nted-cmd-1 --verbose"),
            Command("-pPl4nted-cmd-2 -u root"),
            Command("-p Pl4nted-cmd-3"),
            Command("--api-key=Pl4nted-cmd-4"),
            Command("/password:Pl4nted-cmd-5"),
            Command("--Jobs:ClientSecret=Pl4nted-cmd-6"),
            Command("\"--connection=Server=db;Password=Pl4nted-cmd-7\""),
            Command("-H \"X-Api-Key: Pl4nted-cmd-8\""),
        };

        await RestoreAsync(await WriteBackupAsync("commands", commands));

        var stored = await _host.QueryAsync(db => db.CommandLogs.AsNoTracking().ToListAsync());
        Assert.That(stored, Has.Count.EqualTo(commands.Length));
        foreach (var command in stored)
        {
            AssertNoPlantedSecret(command);
        }

        Assert.That(stored.Single(c => c.Input!.StartsWith("--db-password", StringComparison.Ordinal)).Input, Does.EndWith(" --verbose"));
        Assert.That(stored.Single(c => c.Input!.StartsWith("-pP", StringComparison.Ordinal) || c.Input!.EndsWith("-u root", StringComparison.Ordinal)).Input,
            Does.EndWith("-u root"));
    }

    private static void AssertNoPlantedSecret(object row)
    {
        var json = JsonSerializer.Serialize(row, row.GetType(), LedgerBackup.JsonOptions);
        Assert.That(json, Does.Not.Contain("Pl4nted"), "a secret of the backup was stored in clear");
    }

    private async Task RestoreAsync(string file)
    {
        var result = await _host.Services.GetRequiredService<LedgerMaintenance>().RestoreAsync(file);
        Assert.That(result.Skipped, Is.Zero);
        Assert.That(result.Restored, Is.GreaterThan(0));
    }

    private async Task<string> WriteBackupAsync(string kind, params object[] rows)
    {
        var file = Path.Combine(_directory, kind + "-" + Guid.NewGuid().ToString("N") + ".jsonl.gz");
        await using var writer = new StreamWriter(new GZipStream(File.Create(file), CompressionLevel.Fastest));
        await writer.WriteLineAsync("{\"format\":\"joblog-backup\",\"version\":1,\"kind\":\"" + kind + "\",\"createdAt\":\"2026-12-04T20:13:12Z\"}");
        foreach (var row in rows)
        {
            await writer.WriteLineAsync(JsonSerializer.Serialize(row, row.GetType(), LedgerBackup.JsonOptions));
        }

        return file;
    }
}
