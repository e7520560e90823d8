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
    /// </summary>
    public static readonly string SqlFunction = string.Create(CultureInfo.InvariantCulture, $$"""
        CREATE OR REPLACE FUNCTION {{Function}}(id uuid) RETURNS integer LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
            SELECT CASE
                WHEN substr(h, 13, 1) = '7' AND substr(h, 17, 1) IN ('8', '9', 'a', 'b')
                     AND ('x' || substr(h, 1, 12))::bit(48)::bigint >= {{s_firstMs}} AND ('x' || substr(h, 1, 12))::bit(48)::bigint < {{s_endMs}}
                    THEN (('x' || substr(h, 1, 12))::bit(48)::bigint / {{MillisecondsPerDay}})::integer
                WHEN ('x' || substr(h, 21, 12))::bit(48)::bigint >= {{s_first48}} AND ('x' || substr(h, 21, 12))::bit(48)::bigint < {{s_end48}}
                    THEN ((('x' || substr(h, 21, 12))::bit(48)::bigint * 65536 - {{DateTime.UnixEpoch.Ticks}}) / {{TimeSpan.TicksPerDay}})::integer
                ELSE {{Undated}}
            END
            FROM (SELECT replace(id::text, '-', '') AS h) s
        $fn$;
        """);

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
