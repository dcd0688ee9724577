// The preload: exposes the contract, one function per channel, and the native file dialog through
// contextBridge.
import { contextBridge, ipcRenderer, webUtils, type IpcRendererEvent } from 'electron';
import { buildApi } from './api.ts';

contextBridge.exposeInMainWorld(
  'fewshot',
  buildApi(
    (channel, input) => ipcRenderer.invoke('fsl:invoke', channel, input),
    (listener) => {
      const handler = (_e: IpcRendererEvent, event: unknown): void => listener(event);
      ipcRenderer.on('fsl:event', handler);
      return () => ipcRenderer.removeListener('fsl:event', handler);
    },
    (request) => ipcRenderer.invoke('fsl:pick', request),
    (listener) => {
      const handler = (_e: IpcRendererEvent, notice: unknown): void => listener(notice);
      ipcRenderer.on('fsl:engine', handler);
      return () => ipcRenderer.removeListener('fsl:engine', handler);
    },
    (file) => webUtils.getPathForFile(file as File),
  ),
);
