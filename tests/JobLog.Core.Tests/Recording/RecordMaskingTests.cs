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
}
