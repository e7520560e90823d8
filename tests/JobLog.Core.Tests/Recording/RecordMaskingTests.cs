using JobLog.Recording;
using JobLog.Redaction;
using NUnit.Framework;

namespace JobLog.Core.Tests.Recording;

public class RecordMaskingTests
{
    private readonly RecordMasking _masking = new(new Redactor(new RedactionOptions()));

    [Test]
    public void Apply_NothingToMask_ReturnsTheRecordItself()
    {
        var record = new RunFinished(Guid.NewGuid(), Guid.NewGuid(), TaskRunState.Failed, DateTime.UtcNow, "timeout", "done", null);

        Assert.That(_masking.Apply(record), Is.SameAs(record));
    }

    [Test]
    public void Apply_ASecretInAText_ReturnsAMaskedCopy_AndLeavesTheRecordAsItWas()
    {
        const string error = "could not connect: Host=db;Username=app;Password=hunter2";
        var record = new RunFinished(Guid.NewGuid(), Guid.NewGuid(), TaskRunState.Failed, DateTime.UtcNow, error, "done", null);

        var masked = (RunFinished)_masking.Apply(record);

        Assert.That(masked, Is.Not.SameAs(record));
        Assert.That(masked.ErrorMessage, Does.Not.Contain("hunter2"));
        Assert.That((masked.RunId, masked.Output), Is.EqualTo((record.RunId, record.Output)));
        Assert.That(record.ErrorMessage, Is.EqualTo(error));
    }

    [Test]
    public void Apply_ASecretInAPayload_CopiesThePayloadOnly()
    {
        var task = new TaskPayload { Id = Guid.NewGuid(), Name = "Charge", Input = "Password=hunter2", DispatchedAt = DateTime.UtcNow };
        var run = new RunPayload { Id = Guid.NewGuid(), TaskId = task.Id, Name = "Charge", ConsumerType = "C", Start = DateTime.UtcNow };
        var record = new RunStarted(run, task, false);

        var masked = (RunStarted)_masking.Apply(record);

        Assert.That(masked.TaskSeed.Input, Does.Not.Contain("hunter2"));
        Assert.That(masked.Run, Is.SameAs(run), "the run had nothing to mask");
        Assert.That(task.Input, Is.EqualTo("Password=hunter2"));
    }

    [Test]
    public void Apply_TheSameLongErrorAgain_IsMaskedAlike_AndAnotherTextIsNotTakenForIt()
    {
        var trace = string.Concat(Enumerable.Repeat("   at Bench.Consume(ConsumeContext context, CancellationToken cancellationToken)\n", 8));
        var secret = "declined: Password=hunter2\n" + trace;
        var otherSecret = "declined: Password=swordfish\n" + trace;
        var plain = "declined\n" + trace;

        foreach (var text in new[] { secret, otherSecret, plain, secret, new string(plain.ToCharArray()), new string(otherSecret.ToCharArray()) })
        {
            var record = new RunFinished(Guid.NewGuid(), Guid.NewGuid(), TaskRunState.Retried, DateTime.UtcNow, text, null, null);

            var masked = (RunFinished)_masking.Apply(record);

            Assert.That(masked.ErrorMessage, Is.EqualTo(new RecordMasking(new Redactor(new RedactionOptions())).Apply(record) is RunFinished fresh ? fresh.ErrorMessage : null));
            Assert.That(masked.ErrorMessage, Does.Not.Contain("hunter2").And.Not.Contain("swordfish"));
            if (text.StartsWith("declined\n", StringComparison.Ordinal))
            {
                Assert.That(masked, Is.SameAs(record), "nothing to mask: the record itself, whichever instance of the text it holds");
            }
        }
    }
}
