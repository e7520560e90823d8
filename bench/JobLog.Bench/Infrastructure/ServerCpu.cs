using System.Globalization;

namespace JobLog.Bench.Infrastructure;

/// <summary>
/// CPU time of the servers on this machine (Linux <c>/proc</c>): every <c>postgres</c> process plus what the postmaster
/// reaped from backends that exited (its <c>cutime</c>/<c>cstime</c>), and every <c>beam.smp</c> (RabbitMQ). The bench's
/// own process CPU misses this work although it competes for the same cores. The servers are shared: other sessions'
/// load on them is counted too, so compare runs taken side by side.
/// </summary>
internal readonly record struct ServerCpu(TimeSpan Postgres, TimeSpan Rabbit, bool Available, TimeSpan Ledger = default)
{
    private static readonly double s_tick = 1.0 / 100; // USER_HZ: 100 on every Linux ABI .NET runs on

    /// <summary>The CPU time so far of each postgres process, by pid (to single out a database's backends later).</summary>
    public IReadOnlyDictionary<int, double>? PostgresPids { get; init; }

    /// <summary>
    /// The CPU of the backends serving <paramref name="database"/> between <paramref name="before"/> and now (those alive
    /// at the end; a backend that exited meanwhile is missed): the ledger's own cost, free of other sessions' load.
    /// </summary>
    public static async Task<ServerCpu> SinceAsync(ServerCpu before, string? database, string adminConnectionString)
    {
        var now = Take();
        var delta = now - before;
        if (database is null || now.PostgresPids is null || before.PostgresPids is null)
        {
            return delta;
        }

        var pids = new List<int>();
        await using (var connection = new Npgsql.NpgsqlConnection(adminConnectionString))
        {
            await connection.OpenAsync();
            await using var command = new Npgsql.NpgsqlCommand("SELECT pid FROM pg_stat_activity WHERE datname = $1", connection);
            command.Parameters.Add(new Npgsql.NpgsqlParameter { Value = database });
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                pids.Add(reader.GetInt32(0));
            }
        }

        var ledger = pids.Sum(pid => now.PostgresPids.GetValueOrDefault(pid) - before.PostgresPids.GetValueOrDefault(pid));
        return delta with { Ledger = TimeSpan.FromSeconds(ledger) };
    }

    public static ServerCpu Take()
    {
        if (!OperatingSystem.IsLinux())
        {
            return default;
        }

        var found = new List<(int Pid, bool IsPostgres, int Parent, double Own, double Reaped)>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            var name = Path.GetFileName(dir);
            if (name.Length == 0 || !char.IsAsciiDigit(name[0]))
            {
                continue;
            }

            string stat;
            try
            {
                stat = File.ReadAllText(Path.Combine(dir, "stat"));
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                continue; // exited meanwhile
            }

            // pid (comm) state ppid ... : comm may hold spaces, the fields after its closing parenthesis do not.
            var open = stat.IndexOf('(', StringComparison.Ordinal);
            var close = stat.LastIndexOf(')');
            if (open < 0 || close < open)
            {
                continue;
            }

            var comm = stat[(open + 1)..close];
            var isPostgres = comm == "postgres";
            if (!isPostgres && comm != "beam.smp")
            {
                continue;
            }

            // After ")": state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17), numbered from 1 with pid.
            var fields = stat[(close + 2)..].Split(' ');
            double Field(int number) => double.Parse(fields[number - 3], CultureInfo.InvariantCulture);
            found.Add((int.Parse(name, CultureInfo.InvariantCulture), isPostgres, (int)Field(4), (Field(14) + Field(15)) * s_tick,
                (Field(16) + Field(17)) * s_tick));
        }

        var postgresPids = found.Where(p => p.IsPostgres).Select(p => p.Pid).ToHashSet();
        double postgres = 0, rabbit = 0;
        foreach (var p in found)
        {
            if (!p.IsPostgres)
            {
                rabbit += p.Own;
            }
            else
            {
                // The postmaster (a postgres process whose parent is not one) also holds its exited backends' time.
                postgres += p.Own + (postgresPids.Contains(p.Parent) ? 0 : p.Reaped);
            }
        }

        return new ServerCpu(TimeSpan.FromSeconds(postgres), TimeSpan.FromSeconds(rabbit), true)
        {
            PostgresPids = found.Where(p => p.IsPostgres).ToDictionary(p => p.Pid, p => p.Own),
        };
    }

    public static ServerCpu operator -(ServerCpu a, ServerCpu b) =>
        new(a.Postgres - b.Postgres, a.Rabbit - b.Rabbit, a.Available && b.Available, a.Ledger - b.Ledger);
}
