using System.Text;
using Microsoft.Data.Sqlite;
using Npgsql;
using NUnit.Framework;

namespace JobLog.Testing.Hostile;

/// <summary>
/// One case of the hostile-input corpus (<c>Hostile/Corpus/*.case</c>): a header of <c># key: value</c> lines (the
/// content type, each planted secret, the marker the stored body must show), a <c>---</c> line, then the payload's raw
/// bytes (which may be invalid UTF-8).
/// </summary>
public sealed class HostileCase
{
    private HostileCase(string name, string contentType, IReadOnlyList<string> secrets, string marker, byte[] payload)
    {
        Name = name;
        ContentType = contentType;
        Secrets = secrets;
        Marker = marker;
        Payload = payload;
    }

    public string Name { get; }

    public string ContentType { get; }

    /// <summary>Texts that must appear nowhere in the ledger.</summary>
    public IReadOnlyList<string> Secrets { get; }

    /// <summary>What the stored request body shows instead of the secret.</summary>
    public string Marker { get; }

    public byte[] Payload { get; }

    /// <summary>The payload as a .NET string (invalid UTF-8 becomes U+FFFD, as a decoder would give it to an application).</summary>
    public string Text => Encoding.UTF8.GetString(Payload);

    public override string ToString() => Name;

    /// <summary>Every case of the corpus, copied next to the test assembly.</summary>
    public static IEnumerable<HostileCase> All()
    {
        var directory = Path.Combine(AppContext.BaseDirectory, "Hostile", "Corpus");
        var files = Directory.GetFiles(directory, "*.case").OrderBy(f => f, StringComparer.Ordinal).ToList();
        if (files.Count == 0)
        {
            throw new InvalidOperationException("The hostile-input corpus is missing from " + directory);
        }

        return files.Select(Load);
    }

    public static HostileCase Load(string file)
    {
        var bytes = File.ReadAllBytes(file);
        var separator = "\n---\n"u8;
        var at = bytes.AsSpan().IndexOf(separator);
        if (at < 0)
        {
            throw new InvalidDataException(file + ": no '---' line after the header");
        }

        var header = Encoding.UTF8.GetString(bytes, 0, at).Split('\n');
        string Value(string line) => line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
        var contentType = header.Where(l => l.StartsWith("# content-type:", StringComparison.Ordinal)).Select(Value).Single();
        var secrets = header.Where(l => l.StartsWith("# secret:", StringComparison.Ordinal)).Select(Value).ToList();
        var marker = header.Where(l => l.StartsWith("# marker:", StringComparison.Ordinal)).Select(Value).Single();
        if (secrets.Count == 0)
        {
            throw new InvalidDataException(file + ": no planted secret");
        }

        return new HostileCase(Path.GetFileNameWithoutExtension(file), contentType, secrets, marker, bytes[(at + separator.Length)..]);
    }

    /// <summary>Fails when any secret appears in the raw bytes of the SQLite ledger (its file, WAL and journal), as UTF-8 or UTF-16.</summary>
    public static void AssertNotInSqliteFile(TestLedger ledger, IEnumerable<string> secrets)
    {
        var file = ledger.File ?? throw new InvalidOperationException("Not a SQLite ledger.");
        SqliteConnection.ClearAllPools();
        var images = new[] { file, file + "-wal", file + "-journal" }.Where(File.Exists).Select(f => (f, File.ReadAllBytes(f))).ToList();
        Assert.That(images, Is.Not.Empty, "the ledger file exists");
        foreach (var secret in secrets)
        {
            foreach (var (path, image) in images)
            {
                Assert.That(image.AsSpan().IndexOf(Encoding.UTF8.GetBytes(secret)), Is.EqualTo(-1), $"'{secret}' in the bytes of {Path.GetFileName(path)}");
                Assert.That(image.AsSpan().IndexOf(Encoding.Unicode.GetBytes(secret)), Is.EqualTo(-1), $"'{secret}' (UTF-16) in the bytes of {Path.GetFileName(path)}");
            }
        }
    }

    /// <summary>Fails when any secret appears in any row of any table of the PostgreSQL ledger (each row as text).</summary>
    public static async Task AssertNotInPostgresAsync(TestLedger ledger, IEnumerable<string> secrets)
    {
        await using var connection = new NpgsqlConnection(ledger.ConnectionString);
        await connection.OpenAsync();
        var tables = new List<string>();
        await using (var list = new NpgsqlCommand("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()", connection))
        await using (var reader = await list.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                tables.Add(reader.GetString(0));
            }
        }

        Assert.That(tables, Is.Not.Empty);
        var rows = new StringBuilder();
        foreach (var table in tables)
        {
            await using var select = new NpgsqlCommand($"SELECT t::text FROM \"{table}\" t", connection);
            await using var reader = await select.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                rows.Append(reader.GetString(0)).Append('\n');
            }
        }

        var all = rows.ToString();
        foreach (var secret in secrets)
        {
            Assert.That(all, Does.Not.Contain(secret), $"'{secret}' in a PostgreSQL row");
        }
    }
}
