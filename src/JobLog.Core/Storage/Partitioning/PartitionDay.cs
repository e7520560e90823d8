using System.Globalization;

namespace JobLog.Storage.Partitioning;

/// <summary>
/// The partition key of a partitioned PostgreSQL ledger (docs/scale.md#partitioning): the UTC day, as days since
/// 1970-01-01, that a row's id carries, or <see cref="Undated"/>. Every writer derives it from the id alone, so the
/// publisher and the consumer of one message compute the same key and their upserts meet on <c>("Id", key)</c>. A task
/// is keyed by its own id, a run by its task's id (a task and its runs share a partition).
/// </summary>
/// <remarks>
/// Read, in this order: a UUID version 7 (<c>Guid.CreateVersion7</c>: the first 48 bits are Unix milliseconds); a
/// MassTransit <c>NewId</c> as <c>NewId.NextGuid()</c> makes it (the last 6 bytes, in the text form, are the top 48
/// bits of the creation time's .NET ticks). A time outside [<see cref="First"/>, <see cref="End"/>) means the id
/// carries no plausible time (a random <c>Guid.NewGuid()</c>, mostly): <see cref="Undated"/>. The SQL function
/// <see cref="SqlFunction"/> computes the same, byte for byte (<c>PartitionDayTests</c>).
/// </remarks>
internal static class PartitionDay
{
    /// <summary>The key of an id without a plausible time: its rows live in the <c>_undated</c> partition.</summary>
    public const int Undated = 0;

    /// <summary>The SQL function's name.</summary>
    public const string Function = "joblog_id_day";

    /// <summary>The partition key column of the partitioned tables.</summary>
    public const string Column = "PartitionDay";

    /// <summary>The earliest plausible time an id carries.</summary>
    public static readonly DateTime First = new(2020, 1, 1, 0, 0, 0, DateTimeKind.Utc);

    /// <summary>The end of plausible times.</summary>
    public static readonly DateTime End = new(2100, 1, 1, 0, 0, 0, DateTimeKind.Utc);

    private const long MillisecondsPerDay = 86_400_000;
    private static readonly long s_firstMs = (long)(First - DateTime.UnixEpoch).TotalMilliseconds;
    private static readonly long s_endMs = (long)(End - DateTime.UnixEpoch).TotalMilliseconds;

    // NewId keeps the top 48 of the 64 bits of the ticks (6.5 ms units).
    private static readonly long s_first48 = First.Ticks >> 16;
    private static readonly long s_end48 = End.Ticks >> 16;

    /// <summary>
    /// <c>joblog_id_day(uuid) → integer</c>, immutable: the same key as <see cref="Of(Guid)"/>. Created by the conversion
    /// (<see cref="LedgerPartitioning"/>); the writer's statements call it, so they need no key from the application.
    /// PL/pgSQL over the id's bytes (<c>uuid_send</c>): 2 µs a call, where the first form (SQL over the id's text, a
    /// function PostgreSQL cannot inline) took 23 µs, which every search of a side table partitioned by day pays once
    /// per task it checks (docs/scale.md "Session 14 (searchpart)"); start-up replaces that form
    /// (<see cref="IsCurrentSql"/>).
    /// </summary>
    public static readonly string SqlFunction = string.Create(CultureInfo.InvariantCulture, $$"""
        CREATE OR REPLACE FUNCTION {{Function}}(id uuid) RETURNS integer LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
        DECLARE
            b bytea := uuid_send(id);
            t bigint;
        BEGIN
            IF get_byte(b, 6) >> 4 = 7 AND get_byte(b, 8) & 192 = 128 THEN
                t := (get_byte(b, 0)::bigint << 40) | (get_byte(b, 1)::bigint << 32) | (get_byte(b, 2)::bigint << 24)
                    | (get_byte(b, 3)::bigint << 16) | (get_byte(b, 4)::bigint << 8) | get_byte(b, 5);
                IF t >= {{s_firstMs}} AND t < {{s_endMs}} THEN
                    RETURN (t / {{MillisecondsPerDay}})::integer;
                END IF;
            END IF;
            t := (get_byte(b, 10)::bigint << 40) | (get_byte(b, 11)::bigint << 32) | (get_byte(b, 12)::bigint << 24)
                | (get_byte(b, 13)::bigint << 16) | (get_byte(b, 14)::bigint << 8) | get_byte(b, 15);
            IF t >= {{s_first48}} AND t < {{s_end48}} THEN
                RETURN ((t * 65536 - {{DateTime.UnixEpoch.Ticks}}) / {{TimeSpan.TicksPerDay}})::integer;
            END IF;
            RETURN {{Undated}};
        END
        $fn$;
        """);

    /// <summary>Whether the ledger's <see cref="Function"/> is <see cref="SqlFunction"/>'s form (a ledger partitioned before session 14 has the slower one).</summary>
    public const string IsCurrentSql =
        "SELECT COALESCE((SELECT p.prosrc LIKE '%uuid_send%' FROM pg_proc p WHERE p.oid = to_regprocedure('" + Function + "(uuid)')), TRUE)";

    /// <summary>The key of <paramref name="id"/>.</summary>
    public static int Of(Guid id)
    {
        Span<byte> b = stackalloc byte[16];
        id.TryWriteBytes(b, bigEndian: true, out _);
        if (b[6] >> 4 == 7 && (b[8] & 0xC0) == 0x80)
        {
            var ms = Read48(b[..6]);
            if (ms >= s_firstMs && ms < s_endMs)
            {
                return (int)(ms / MillisecondsPerDay);
            }
        }

        var ticks48 = Read48(b[10..]);
        return ticks48 >= s_first48 && ticks48 < s_end48
            ? (int)(((ticks48 << 16) - DateTime.UnixEpoch.Ticks) / TimeSpan.TicksPerDay)
            : Undated;
    }

    /// <summary>The key of the UTC day <paramref name="time"/> falls in.</summary>
    public static int Of(DateTime time) => (int)((time.Ticks - DateTime.UnixEpoch.Ticks) / TimeSpan.TicksPerDay);

    /// <summary>The first instant (UTC) of <paramref name="day"/>.</summary>
    public static DateTime Start(int day) => DateTime.UnixEpoch.AddDays(day);

    /// <summary>The suffix of a day's partitions: <c>p20261203</c>.</summary>
    public static string Suffix(int day) => "p" + Start(day).ToString("yyyyMMdd", CultureInfo.InvariantCulture);

    private static long Read48(ReadOnlySpan<byte> six)
    {
        long value = 0;
        foreach (var b in six)
        {
            value = (value << 8) | b;
        }

        return value;
    }
}
