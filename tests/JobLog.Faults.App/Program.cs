using JobLog.Faults.App;

return await FaultApp.RunAsync(args);
