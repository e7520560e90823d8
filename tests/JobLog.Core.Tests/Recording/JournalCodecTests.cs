using System.Buffers;
using System.Text;
using System.Text.Json;
using JobLog.Recording;
using JobLog.Recording.Journal;
using JobLog.Redaction;
using NUnit.Framework;

namespace JobLog.Core.Tests.Recording;

/// <summary>The journal writes a run's start as it is: its deferred rendering (a live message) is never serialised.</summary>
public class JournalCodecTests
{
    [Test]
    public void RunStarted_WithADeferredRendering_IsWrittenWithoutIt_AndReadsBack()
    {
        var taskId = Guid.NewGuid();
        var run = new RunPayload { Id = Guid.NewGuid(), TaskId = taskId, Name = "Charge", ConsumerType = "C", Start = new DateTime(2026, 3, 1, 8, 0, 0, DateTimeKind.Utc), Host = "h" };
        var seed = new TaskPayload { Id = taskId, Name = "Charge", DispatchedAt = run.Start };
        var rendering = new DeferredRendering(new { Secret = "never-in-the-journal" }, new MessageRenderer(new Redactor(new RedactionOptions())));
        var started = new RunStarted(run, seed, true, rendering);

        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            JournalCodec.Write(writer, started);
        }

        var line = Encoding.UTF8.GetString(buffer.WrittenSpan);
        Assert.That(line, Does.Not.Contain("never-in-the-journal"));
        Assert.That(line, Does.Not.Contain("Rendering"));
        var read = JournalCodec.Read(buffer.WrittenSpan) as RunStarted;
        Assert.That(read, Is.Not.Null);
        Assert.That((read!.Run, read.TaskSeed, read.ExpireOrphans, read.Rendering), Is.EqualTo((run, seed, true, (DeferredRendering?)null)));
        Assert.That(started.Rendering, Is.SameAs(rendering), "the queued record keeps its rendering for the writer");
    }
}
