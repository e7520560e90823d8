using NUnit.Framework;

namespace JobLog.Worker.Tests.Hostile41;

/// <summary>
/// A SQLite ledger setting that names a file that is not there (a typo: <c>/srv/leders/joblog.db</c>): only <c>migrate</c>,
/// <c>demo</c> and the worker create a ledger; every other command says there is none, names the path and exits 1, and
/// leaves nothing behind (no file, no directory, no lock file). A usage error still comes first (exit 2), the ledger
/// untouched.
/// </summary>
public class MissingLedgerTests
{
    private DirectoryInfo _root = null!;
    private string _path = "";

    [SetUp]
    public void MakeRoot()
    {
        _root = Directory.CreateTempSubdirectory("joblog-hostile41-");
        _path = Path.Combine(_root.FullName, "leders", "joblog.db");
    }

    [TearDown]
    public void RemoveRoot() => _root.Delete(recursive: true);

    private static async Task<(int Exit, string Output, string Error)> RunAsync(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        // Recorded, as a user's command from a shell is: the path that migrates and starts the writer before the command.
        var exit = await Cli.Cli.RunAsync(args, Cli.CliConsole.Redirected(output, error));
        return (exit, output.ToString(), error.ToString());
    }

    private string Setting => "--ConnectionStrings:JobLog=Data Source=" + _path;

    private string[] LeftBehind() => [.. _root.EnumerateFileSystemInfos("*", SearchOption.AllDirectories).Select(f => f.FullName)];

    [TestCase("tasks")]
    [TestCase("tasks", "--json")]
    [TestCase("task", "0b9f6f3e-5d1c-4c4e-9a55-2b0f2f3c1a77")]
    [TestCase("failures")]
    [TestCase("hosts")]
    [TestCase("retry", "0b9f6f3e-5d1c-4c4e-9a55-2b0f2f3c1a77", "--no-wait")]
    [TestCase("resolve", "0b9f6f3e-5d1c-4c4e-9a55-2b0f2f3c1a77")]
    [TestCase("purge", "--type", "all", "--older-than", "30d")]
    [TestCase("sweep")]
    [TestCase("replay")]
    public async Task ACommandOverALedgerFileThatIsNotThere_ExitsWith1_NamingThePath_AndCreatesNothing(params string[] args)
    {
        var (exit, output, error) = await RunAsync([.. args, Setting]);

        Assert.That(exit, Is.EqualTo(1), output + error);
        Assert.That(error, Does.Contain("no ledger at " + _path).And.Contain("migrate"), error);
        Assert.That(error.TrimEnd().Split('\n'), Has.Length.EqualTo(1), error);
        Assert.That(output, Does.Not.Contain("(no task matches)"));
        Assert.That(LeftBehind(), Is.Empty, "no ledger, directory or lock file made");
    }

    [Test]
    public async Task RestoreOverALedgerFileThatIsNotThere_ExitsWith1_AndCreatesNothing()
    {
        // A backup to restore: any file will do, the ledger is looked for first.
        var backup = Path.Combine(_root.FullName, "backup.jsonl.gz");
        await File.WriteAllBytesAsync(backup, [0x1f, 0x8b]);

        var (exit, output, error) = await RunAsync("restore", backup, Setting);

        Assert.That(exit, Is.EqualTo(1), output + error);
        Assert.That(error, Does.Contain("no ledger at " + _path), error);
        Assert.That(LeftBehind(), Is.EqualTo(new[] { backup }));
    }

    [TestCase("tasks", "--state", "zombie")]
    [TestCase("tasks", "--since", "-5m")]
    [TestCase("task", "not-an-id")]
    [TestCase("failures", "--by", "nothing")]
    [TestCase("hosts", "--limit", "501")]
    [TestCase("retry", "123")]
    [TestCase("resolve", "--by", "", "0b9f6f3e-5d1c-4c4e-9a55-2b0f2f3c1a77")]
    [TestCase("purge", "--type", "tasks")]
    [TestCase("purge", "--type", "../tasks", "--older-than", "30d")]
    [TestCase("restore", "/nonexistent/joblog-backup.jsonl.gz")]
    [TestCase("tasks", "--JobLog:MaxBatchSize=0")]
    public async Task AUsageErrorOverALedgerFileThatIsNotThere_IsStillTheUsageError_Exit2_AndCreatesNothing(params string[] args)
    {
        var (exit, output, error) = await RunAsync([.. args, Setting]);

        Assert.That(exit, Is.EqualTo(2), output + error);
        Assert.That(error, Does.Not.Contain("no ledger"), error);
        Assert.That(LeftBehind(), Is.Empty, "the ledger untouched");
    }

    [Test]
    public async Task Migrate_CreatesTheLedgerAndItsDirectory_ThenEveryReadCommandReadsIt()
    {
        var (exit, output, error) = await RunAsync("migrate", Setting);
        Assert.That(exit, Is.Zero, output + error);
        Assert.That(File.Exists(_path), Is.True);

        (exit, output, error) = await RunAsync("tasks", Setting);
        Assert.That(exit, Is.Zero, output + error);
        Assert.That(output, Does.Contain("(no task matches)"));
        (exit, output, error) = await RunAsync("failures", Setting);
        Assert.That(exit, Is.Zero, output + error);
    }

    [Test]
    public async Task ADirectoryAsTheLedger_ExitsWith1_SayingSo()
    {
        Directory.CreateDirectory(_path);

        var (exit, output, error) = await RunAsync("tasks", Setting);

        Assert.That(exit, Is.EqualTo(1), output + error);
        Assert.That(error, Does.Contain(_path).And.Contain("directory"), error);
        Assert.That(LeftBehind(), Is.EquivalentTo(new[] { Path.GetDirectoryName(_path)!, _path }), "nothing beside the directory");
    }
}
