using System.Diagnostics;
using JobLog.Testing;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.Worker.Tests.Hostile43;

/// <summary>
/// A SQLite ledger opened read-only (<c>Mode=ReadOnly</c>, a <c>file:</c> URI's <c>?mode=ro</c> or <c>?immutable=1</c>, or a
/// file on a read-only mount): the read commands read it (the list, a task, a search, the failures' groups, the hosts), the
/// ledger's bytes unchanged; a command that writes says it cannot, naming the file. Before session 43 every command failed
/// with SQLite's "attempt to write a readonly database": it migrated and recorded itself in the ledger.
/// </summary>
public class ReadOnlyLedgerTests
{
    private const string Declined = "Shop.CardDeclinedException: Declined\n   at Shop.Charge.Handle(ConsumeContext c)";

    private DirectoryInfo _root = null!;
    private string _path = "";
    private readonly List<Guid> _ids = [];

    [SetUp]
    public async Task SeedALedger()
    {
        _root = Directory.CreateTempSubdirectory("joblog-hostile43-");
        _path = Path.Combine(_root.FullName, "joblog.db");
        _ids.Clear();
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var now = DateTime.UtcNow;
        await host.QueryAsync(db =>
        {
            for (var i = 0; i < 3; i++)
            {
                var id = Guid.NewGuid();
                _ids.Add(id);
                var failed = i == 0;
                // Added as rows, not recorded: the failure's group columns are not filled, so the failures read would fill them.
                db.Add(new TaskLog
                {
                    Id = id, Name = "Charge", QueueName = "charge", DispatchedAt = now.AddMinutes(-i), Stop = now.AddMinutes(-i),
                    State = failed ? TaskState.Failed : TaskState.Succeeded, Input = "CustomerId=" + (4711 + i),
                    Runs =
                    [
                        new TaskRunLog
                        {
                            Id = Guid.NewGuid(), TaskId = id, Name = "Charge", ConsumerType = "C", QueueName = "charge", Start = now.AddMinutes(-i),
                            State = failed ? TaskRunState.Failed : TaskRunState.Succeeded, ErrorMessage = failed ? Declined : null,
                        },
                    ],
                });
            }

            return db.SaveChangesAsync();
        });
        await host.Host.StopAsync();
        SqliteConnection.ClearAllPools();
        // The last connection's close checkpointed the WAL into the file: the file is the whole ledger.
        Assert.That(File.Exists(host.Ledger.File + "-wal"), Is.False, "the WAL checkpointed");
        File.Copy(host.Ledger.File!, _path);
    }

    [TearDown]
    public void RemoveRoot()
    {
        SqliteConnection.ClearAllPools();
        _root.Delete(recursive: true);
    }

    private static async Task<(int Exit, string Output, string Error)> RunAsync(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var exit = await Cli.Cli.RunAsync(args, Cli.CliConsole.Redirected(output, error));
        return (exit, output.ToString(), error.ToString());
    }

    private static string Source(string form, string path) => form switch
    {
        "read-only" => "Data Source=" + path + ";Mode=ReadOnly",
        "uri-read-only" => "Data Source=file:" + path + "?mode=ro",
        "uri-immutable" => "Data Source=file:" + path + "?immutable=1",
        _ => throw new ArgumentOutOfRangeException(nameof(form)),
    };

    [TestCase("read-only")]
    [TestCase("uri-read-only")]
    [TestCase("uri-immutable")]
    public async Task TheReadCommands_ReadAReadOnlyLedger_AndLeaveItAsItWas(string form)
    {
        var bytes = await File.ReadAllBytesAsync(_path);

        await ReadsEverything(Source(form, _path));

        SqliteConnection.ClearAllPools();
        Assert.That(await File.ReadAllBytesAsync(_path), Is.EqualTo(bytes), "the ledger as it was");
    }

    /// <summary>
    /// On a read-only mount (root's permission bits stop nothing; a mount does): SQLite reads a WAL ledger there only when
    /// opened immutable (it cannot create the shared-memory file a read-only connection needs otherwise). Read-only or
    /// <c>?mode=ro</c> gets SQLite's "unable to open database file", with the file and the immutable form to use.
    /// </summary>
    [TestCase("uri-immutable", true)]
    [TestCase("read-only", false)]
    [TestCase("uri-read-only", false)]
    public async Task OnAReadOnlyMount_TheReadCommandsReadAnImmutableLedger_AndTheOthersSayHow(string form, bool reads)
    {
        var mount = Path.Combine(_root.FullName, "ro");
        Directory.CreateDirectory(mount);
        if (!Run("mount", "--bind", _root.FullName, mount))
        {
            Assert.Ignore("a read-only bind mount needs root with CAP_SYS_ADMIN");
        }

        try
        {
            Assert.That(Run("mount", "-o", "remount,bind,ro", mount), Is.True, "remount read-only");
            var path = Path.Combine(mount, "joblog.db");
            Assert.That(() => File.WriteAllText(Path.Combine(mount, "probe"), ""), Throws.InstanceOf<IOException>(), "the mount is read-only, for root too");
            if (reads)
            {
                await ReadsEverything(Source(form, path));
                return;
            }

            var (exit, output, error) = await RunAsync("tasks", "--ConnectionStrings:JobLog=" + Source(form, path));

            Assert.That(exit, Is.EqualTo(1), output + error);
            Assert.That(error, Does.Contain("unable to open database file").And.Contain("Ledger file: " + path + ".").And.Contain("file:" + path + "?immutable=1"), error);
            Assert.That(error.TrimEnd().Split('\n'), Has.Length.EqualTo(1), error);
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            Run("umount", mount);
        }
    }

    [Test]
    public async Task AReadOnlyFileThatIsNotMigrated_IsRefused_SayingToMigrateItFirst_AndLeftAsItWas()
    {
        // A zero-byte file is an empty SQLite database: no schema, every migration to apply.
        var empty = Path.Combine(_root.FullName, "empty.db");
        await File.WriteAllBytesAsync(empty, []);

        var (exit, output, error) = await RunAsync("tasks", "--ConnectionStrings:JobLog=Data Source=" + empty + ";Mode=ReadOnly");

        Assert.That(exit, Is.EqualTo(2), output + error);
        Assert.That(error, Does.Contain("opened read-only and its schema is not this version's").And.Contain("migrate"), error);
        Assert.That(new FileInfo(empty).Length, Is.Zero, "nothing written");
    }

    private async Task ReadsEverything(string source)
    {
        var setting = "--ConnectionStrings:JobLog=" + source;

        var (exit, output, error) = await RunAsync("tasks", setting);
        Assert.That(exit, Is.Zero, output + error);
        Assert.That(_ids, Has.All.Matches<Guid>(id => output.Contains(id.ToString(), StringComparison.Ordinal)), output);

        (exit, output, error) = await RunAsync("tasks", "--search", "CustomerId=4712", setting);
        Assert.That(exit, Is.Zero, output + error);
        Assert.That((output.Contains(_ids[1].ToString(), StringComparison.Ordinal), output.Contains(_ids[0].ToString(), StringComparison.Ordinal)), Is.EqualTo((true, false)), output);

        (exit, output, error) = await RunAsync("task", _ids[0].ToString(), setting);
        Assert.That(exit, Is.Zero, output + error);
        Assert.That(output, Does.Contain("CardDeclinedException"));

        (exit, output, error) = await RunAsync("failures", setting);
        Assert.That(exit, Is.Zero, output + error);
        Assert.That(output, Does.Contain("Shop.CardDeclinedException at Shop.Charge.Handle").And.Contain("1 groups, 1 open failures"));

        (exit, output, error) = await RunAsync("hosts", setting);
        Assert.That(exit, Is.Zero, output + error);

        // A command that writes: SQLite's refusal, one line naming the file (exit 1), as before.
        (exit, output, error) = await RunAsync("purge", "--type", "all", "--older-than", "1s", setting);
        Assert.That(exit, Is.EqualTo(1), output + error);
        Assert.That(error, Does.Contain("readonly database").And.Contain("Ledger file: "), error);
    }

    private static bool Run(string file, params string[] args)
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardError = true, RedirectStandardOutput = true })!;
            process.WaitForExit();
            return process.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }
}

/// <summary>Which SQLite connection strings open the ledger read-only (<see cref="Maintenance.LedgerMaintenance.ReadOnly"/>).</summary>
public class ReadOnlySettingTests
{
    [TestCase("Data Source=/srv/joblog.db", false)]
    [TestCase("Data Source=/srv/joblog.db;Mode=ReadWrite", false)]
    [TestCase("Data Source=/srv/joblog.db;Mode=ReadOnly", true)]
    [TestCase("Data Source=/srv/joblog.db;Mode=readonly", true)]
    [TestCase("Data Source=file:/srv/joblog.db", false)]
    [TestCase("Data Source=file:/srv/joblog.db?mode=ro", true)]
    [TestCase("Data Source=file:/srv/joblog.db?cache=shared&MODE=RO", true)]
    [TestCase("Data Source=file:/srv/joblog.db?mode=rw", false)]
    [TestCase("Data Source=file:/srv/joblog.db?mode=rwc", false)]
    [TestCase("Data Source=file:/srv/joblog.db?mode=ro2", false)]
    [TestCase("Data Source=file:/srv/joblog.db?immutable=1", true)]
    [TestCase("Data Source=file:/srv/joblog.db?immutable=true", true)]
    [TestCase("Data Source=file:/srv/joblog.db?immutable=0", false)]
    [TestCase("Data Source=file:/srv/joblog.db?xmode=ro", false)]
    [TestCase("Data Source=/srv/mode=ro?mode=ro", false)]
    public void ReadOnly_IsWhatSqliteOpensReadOnly(string connectionString, bool readOnly)
    {
        using var services = Cli.LedgerSession.Build(["--ConnectionStrings:JobLog=" + connectionString]);

        Assert.That(services.GetRequiredService<Maintenance.LedgerMaintenance>().ReadOnly, Is.EqualTo(readOnly));
    }
}
