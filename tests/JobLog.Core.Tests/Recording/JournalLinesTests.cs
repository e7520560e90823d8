using System.Buffers;
using System.Reflection;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using JobLog.Recording;
using JobLog.Recording.Journal;
using NUnit.Framework;

namespace JobLog.Core.Tests.Recording;

/// <summary>
/// The journal lines written by hand (<see cref="JournalLines"/>) are the polymorphic serializer's bytes, for every
/// property of every kind it writes: each property is set by reflection (each nullable null and not, hostile texts,
/// every kind of time, odd numbers and enum values), so a property added to one of these records or payloads without
/// its line in <see cref="JournalLines"/> fails here, as does one of a type this test has no values for.
/// </summary>
public class JournalLinesTests
{
    private static readonly Type[] HandWritten = [typeof(TaskDispatched), typeof(RunStarted), typeof(RunFinished), typeof(RunNextRetryKnown), typeof(RunFailedForGood)];

    private static readonly string?[] Texts =
    [
        null, "", "plain", "\"quoted\" \\ back/slash", "<b>'card' & a+b `tick`</b>", "nul\0 \u0001 tab\t cr\r lf\n \u001f del\u007f",
        "déclinée \u2028 \u2029 \u00a0 ü 漢字", "card \U0001F4B3 declined", "lone \ud800 high", "\udc00 lone low", "ends high \ud83d",
        string.Concat(Enumerable.Repeat("at Shop.Charge<T>.Consume() in /src/a.cs:line 4 'x' & \"y\"\n", 8)),
        string.Concat(Enumerable.Repeat("déclinée \U0001F4B3 <tag> \u2028 ", 300)),
    ];

    private static readonly DateTime T0 = new(2026, 12, 3, 1, 0, 0, DateTimeKind.Utc);

    private static readonly DateTime[] Times =
    [
        T0, T0.AddTicks(1), T0.AddTicks(1234567), T0.AddMilliseconds(500), DateTime.SpecifyKind(T0, DateTimeKind.Unspecified),
        DateTime.SpecifyKind(T0.AddTicks(10), DateTimeKind.Local), DateTime.MinValue, DateTime.MaxValue, new DateTime(1, 1, 1, 0, 0, 0, DateTimeKind.Utc),
    ];

    private static readonly double[] Doubles = [0, -0.0, 0.5, 1e-300, double.Epsilon, double.MaxValue, double.MinValue, 123456.789, 1.0 / 3, 12.000000000000002];

    private static readonly int[] Ints = [0, 1, -1, 3, int.MinValue, int.MaxValue];

    [Test]
    public void EveryPropertyOfEveryHandWrittenKind_IsWrittenByteForByteAsTheSerializerWritesIt()
    {
        var random = new Random(45);
        var set = new HashSet<string>();
        var unset = new HashSet<string>();
        var buffer = new ArrayBufferWriter<byte>();
        var scratch = new ArrayBufferWriter<byte>();
        using var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { SkipValidation = true });
        foreach (var type in HandWritten)
        {
            for (var i = 0; i < 400; i++)
            {
                var record = (LedgerRecord)Fill(type, random, set, unset);
                Assert.That(JournalLines.Handles(record), $"{type.Name} is written by hand");

                buffer.ResetWrittenCount();
                buffer.Write("previous line\n"u8);
                JournalCodec.Write(writer, buffer, record, scratch);

                var expected = "previous line\n"u8.ToArray().Concat(JsonSerializer.SerializeToUtf8Bytes(record, SpoolJson.Default.LedgerRecord)).ToArray();
                if (!buffer.WrittenSpan.SequenceEqual(expected))
                {
                    Assert.That(Encoding.UTF8.GetString(buffer.WrittenSpan), Is.EqualTo(Encoding.UTF8.GetString(expected)), $"{type.Name} #{i}");
                    Assert.Fail($"{type.Name} #{i}: the same text, other bytes");
                }
            }
        }

        // Every property was written with a value, and every one that can be left out was left out, in some record.
        var properties = HandWritten.Concat([typeof(TaskPayload), typeof(RunPayload)]).SelectMany(Serialized).ToList();
        Assert.That(properties.Select(Key).Where(k => !set.Contains(k)), Is.Empty, "never set");
        Assert.That(properties.Where(p => CanBeNull(p.PropertyType)).Select(Key).Where(k => !unset.Contains(k)), Is.Empty, "never null");
    }

    [Test]
    public void ARunWithANonFiniteWaitingTime_FailsAsTheSerializerFails_AndLeavesTheJournalAsItWas()
    {
        var buffer = new ArrayBufferWriter<byte>();
        var scratch = new ArrayBufferWriter<byte>();
        using var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { SkipValidation = true });
        // A long text before the number: the writer hands its buffer on when it grows, so a line written straight into the
        // journal's buffer would leave its first part there.
        var run = new RunPayload { Id = Guid.NewGuid(), TaskId = Guid.NewGuid(), Name = "Charge", ConsumerType = "C", Start = T0, Host = "h", Input = new string('x', 40_000) };
        var seed = new TaskPayload { Id = run.TaskId, Name = "Charge", DispatchedAt = T0 };
        foreach (var waiting in new[] { double.NaN, double.PositiveInfinity, double.NegativeInfinity })
        {
            var record = new RunStarted(run with { WaitingTime = waiting }, seed, false);
            buffer.ResetWrittenCount();
            buffer.Write("previous line\n"u8);

            var serializer = Assert.Catch(() => JsonSerializer.SerializeToUtf8Bytes<LedgerRecord>(record, SpoolJson.Default.LedgerRecord));
            var journal = Assert.Catch(() => JournalCodec.Write(writer, buffer, record, scratch));

            Assert.That(journal!.GetType(), Is.EqualTo(serializer!.GetType()), $"{waiting}");
            Assert.That(Encoding.UTF8.GetString(buffer.WrittenSpan), Is.EqualTo("previous line\n"), $"{waiting}: nothing of the record written");
        }

        // The writer is used again as it is after a failure.
        var next = new RunFailedForGood(run.Id, run.TaskId);
        buffer.ResetWrittenCount();
        JournalCodec.Write(writer, buffer, next, scratch);
        Assert.That(buffer.WrittenSpan.SequenceEqual(JsonSerializer.SerializeToUtf8Bytes<LedgerRecord>(next, SpoolJson.Default.LedgerRecord)));
    }

    private static object Fill(Type type, Random random, HashSet<string> set, HashSet<string> unset)
    {
        // A positional record through its constructor, a payload through its parameterless one; then every property set.
        var constructor = type.GetConstructors().Where(c => c.GetCustomAttribute<JsonConstructorAttribute>() is not null).FirstOrDefault()
            ?? type.GetConstructors().OrderBy(c => c.GetParameters().Length).First();
        var arguments = constructor.GetParameters().Select(p => Value(p.ParameterType, $"{type.Name}({p.Name})", random, set, unset)).ToArray();
        var instance = constructor.Invoke(arguments);
        foreach (var property in Serialized(type))
        {
            var value = Value(property.PropertyType, Key(property), random, set, unset);
            property.SetValue(instance, value);
        }

        return instance;
    }

    private static object? Value(Type type, string key, Random random, HashSet<string> set, HashSet<string> unset)
    {
        var underlying = Nullable.GetUnderlyingType(type);
        if ((underlying is not null || type == typeof(string)) && random.Next(3) == 0)
        {
            unset.Add(key);
            return null;
        }

        set.Add(key);
        type = underlying ?? type;
        if (type == typeof(string))
        {
            var text = Texts[random.Next(Texts.Length)];
            if (text is null)
            {
                set.Remove(key);
                unset.Add(key);
            }

            return text;
        }

        return type switch
        {
            _ when type == typeof(Guid) => random.Next(8) == 0 ? Guid.Empty : Guid.NewGuid(),
            _ when type == typeof(DateTime) => Times[random.Next(Times.Length)],
            _ when type == typeof(double) => Doubles[random.Next(Doubles.Length)] * (random.Next(2) == 0 ? 1 : random.NextDouble()),
            _ when type == typeof(int) => Ints[random.Next(Ints.Length)],
            _ when type == typeof(bool) => random.Next(2) == 0,
            _ when type == typeof(TaskRunState) => random.Next(5) == 0 ? (TaskRunState)random.Next(-2, 100) : Enum.GetValues<TaskRunState>()[random.Next(Enum.GetValues<TaskRunState>().Length)],
            _ when type == typeof(TaskPayload) || type == typeof(RunPayload) => Fill(type, random, set, unset),
            _ => throw new NotSupportedException($"No values for {type.Name} ({key}): add them here, and the property's line to JournalLines."),
        };
    }

    /// <summary>The properties the serializer writes (public, settable, not ignored).</summary>
    private static IEnumerable<PropertyInfo> Serialized(Type type) => type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
        .Where(p => p.CanWrite && p.GetCustomAttribute<JsonIgnoreAttribute>() is null);

    private static bool CanBeNull(Type type) => type == typeof(string) || Nullable.GetUnderlyingType(type) is not null;

    private static string Key(PropertyInfo property) => $"{property.DeclaringType!.Name}.{property.Name}";
}
