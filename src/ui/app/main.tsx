import { render } from 'preact';
import { App } from './app.js';
import icon from './icon.svg';
import { takeTokenFromLocation } from './session.js';
import './styles.css';

takeTokenFromLocation();
render(<App icon={icon} />, document.getElementById('root')!);
