using NUnit.Framework;

namespace JobLog.Worker.Tests.Hostile42;

/// <summary>
/// The "no ledger" rule (Hostile41's <c>MissingLedgerTests</c>) for the other ways a SQLite data source names its file:
/// a <c>file:</c> URI (absolute, <c>file:///</c>, with a query, percent-encoded, relative), <c>Mode=ReadOnly</c>, and a
/// database with no file at all (<c>:memory:</c>, <c>Mode=Memory</c>, <c>file::memory:</c>): a command that reads or
/// maintains the ledger says there is none, names the path (or says it is in memory) and exits 1, creating nothing;
/// <c>migrate</c> creates the file the URI names, and the read commands then read it.
/// </summary>
public class UriLedgerTests
{
    private DirectoryInfo _root = null!;
    private string _path = "";

    [SetUp]
    public void MakeRoot()
    {
        _root = Directory.CreateTempSubdirectory("joblog-hostile42-");
        _path = Path.Combine(_root.FullName, "le ders", "joblog.db");
    }

    [TearDown]
    public void RemoveRoot() => _root.Delete(recursive: true);

    private static async Task<(int Exit, string Output, string Error)> RunAsync(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var exit = await Cli.Cli.RunAsync(args, Cli.CliConsole.Redirected(output, error));
        return (exit, output.ToString(), error.ToString());
    }

    private string[] LeftBehind() => [.. _root.EnumerateFileSystemInfos("*", SearchOption.AllDirectories).Select(f => f.FullName)];

    /// <summary>The data source for each way of naming <see cref="_path"/>.</summary>
    private string Source(string form) => form switch
    {
        "uri" => "file:" + _path,
        "uri-authority" => "file://" + _path,
        "uri-localhost" => "file://localhost" + _path,
        "uri-query" => "file:" + _path + "?cache=shared&mode=rwc",
        "uri-escaped" => "file:" + _path.Replace(" ", "%20", StringComparison.Ordinal),
        "uri-relative" => "file:" + Path.GetRelativePath(Environment.CurrentDirectory, _path),
        "read-only" => _path + ";Mode=ReadOnly",
        "uri-read-only" => "file:" + _path + "?mode=ro",
        _ => throw new ArgumentOutOfRangeException(nameof(form)),
    };

    private static readonly string[] s_forms = ["uri", "uri-authority", "uri-localhost", "uri-query", "uri-escaped", "uri-relative", "read-only", "uri-read-only"];

    private static readonly string[][] s_commands = [["tasks"], ["failures"], ["hosts"], ["task", "0b9f6f3e-5d1c-4c4e-9a55-2b0f2f3c1a77"], ["purge", "--type", "all", "--older-than", "30d"], ["replay"]];

    private static IEnumerable<TestCaseData> Cases() =>
        from form in s_forms from command in s_commands select new TestCaseData(form, command).SetArgDisplayNames(form, string.Join(' ', command));

    [TestCaseSource(nameof(Cases))]
    public async Task ACommandOverALedgerFileThatIsNotThere_NamedByAUriOrReadOnly_ExitsWith1_NamingThePath_AndCreatesNothing(string form, string[] command)
    {
        var (exit, output, error) = await RunAsync([.. command, "--ConnectionStrings:JobLog=Data Source=" + Source(form)]);

        Assert.That(exit, Is.EqualTo(1), output + error);
        Assert.That(error, Does.Contain("no ledger at " + _path + " (not there)"), error);
        Assert.That(error.TrimEnd().Split('\n'), Has.Length.EqualTo(1), error);
        Assert.That(LeftBehind(), Is.Empty, "no ledger, directory or lock file made");
    }

    [TestCase("uri")]
    [TestCase("uri-escaped")]
    [TestCase("uri-relative")]
    public async Task Migrate_CreatesTheFileTheUriNames_ThenTheReadCommandsReadIt(string form)
    {
        var setting = "--ConnectionStrings:JobLog=Data Source=" + Source(form);

        var (exit, output, error) = await RunAsync("migrate", setting);
        Assert.That(exit, Is.Zero, output + error);
        Assert.That(File.Exists(_path), Is.True, "the file the URI names, its path percent-decoded: " + string.Join(", ", LeftBehind()));

        (exit, output, error) = await RunAsync("tasks", setting);
        Assert.That(exit, Is.Zero, output + error);
        Assert.That(output, Does.Contain("(no task matches)"));
        (exit, output, error) = await RunAsync("failures", setting);
        Assert.That(exit, Is.Zero, output + error);
    }

    [TestCase("read-only")]
    [TestCase("uri-read-only")]
    public async Task AReadCommandOverAReadOnlyLedgerThatIsThere_ReadsIt_AndLeavesTheFileAsItWas(string form)
    {
        // Session 42 pinned "attempt to write a readonly database" here: the command migrated and recorded itself in the
        // ledger. Since session 43 a read-only ledger is read, the command unrecorded (Hostile43.ReadOnlyLedgerTests).
        var (exit, output, error) = await RunAsync("migrate", "--ConnectionStrings:JobLog=Data Source=" + _path);
        Assert.That(exit, Is.Zero, output + error);
        var bytes = await File.ReadAllBytesAsync(_path);

        (exit, output, error) = await RunAsync("tasks", "--ConnectionStrings:JobLog=Data Source=" + Source(form));

        Assert.That((exit, error), Is.EqualTo((0, "")), output + error);
        Assert.That(output, Does.Contain("(no task matches)"));
        Assert.That(await File.ReadAllBytesAsync(_path), Is.EqualTo(bytes), "the ledger as it was");
    }

    [TestCase("Data Source=:memory:")]
    [TestCase("Data Source=joblog-hostile42.db;Mode=Memory")]
    [TestCase("Data Source=file::memory:?cache=shared")]
    [TestCase("Data Source=file:joblog-hostile42?mode=memory&cache=shared")]
    public async Task AReadCommandOverAnInMemoryLedger_SaysItHasNothingToRead_Exit1(string connectionString)
    {
        var before = Directory.GetFiles(Environment.CurrentDirectory, "joblog-hostile42*");

        var (exit, output, error) = await RunAsync("tasks", "--ConnectionStrings:JobLog=" + connectionString);

        Assert.That(exit, Is.EqualTo(1), output + error);
        Assert.That(error, Does.Contain("no ledger").And.Contain("in-memory"), error);
        Assert.That(output, Does.Not.Contain("(no task matches)"));
        Assert.That(Directory.GetFiles(Environment.CurrentDirectory, "joblog-hostile42*"), Is.EqualTo(before), "no file made for it");
    }
}
